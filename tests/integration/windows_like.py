"""Run a Python script as it would run on Windows as far as sockets go: the ``select``
module stripped of ``poll``, ``epoll`` and every ``POLL*``/``EPOLL*`` name (of everything but
``select`` and ``error``) before anything else imports it, exactly as Windows' module
looks.  ``selectors.DefaultSelector`` is then ``SelectSelector``.

    python tests/integration/windows_like.py SCRIPT [ARGS...]
    python tests/integration/windows_like.py -m MODULE [ARGS...]

The script (or module) runs as ``__main__`` with ``sys.argv`` = [SCRIPT, ARGS...], as
``python SCRIPT ARGS`` (``python -m MODULE ARGS``) would run it.  The launcher
refuses to run it if ``selectors`` or ``socket`` was imported before the strip (they would
have seen the POSIX ``select``).
"""

from __future__ import annotations

import sys

if "selectors" in sys.modules or "socket" in sys.modules:
    sys.exit("windows_like: selectors/socket imported before select was stripped")

import select  # noqa: E402

#: all that Windows' select module has
WINDOWS_HAS = {"select", "error"}
for name in list(vars(select)):
    if not name.startswith("_") and name not in WINDOWS_HAS:
        delattr(select, name)

import os  # noqa: E402
import runpy  # noqa: E402
import selectors  # noqa: E402

assert not hasattr(select, "poll") and not hasattr(select, "epoll"), "select still has poll/epoll"
assert selectors.DefaultSelector is selectors.SelectSelector, selectors.DefaultSelector

if __name__ == "__main__":
    if sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        sys.path[0] = os.getcwd()
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script = sys.argv[1]
        sys.argv = sys.argv[1:]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")
