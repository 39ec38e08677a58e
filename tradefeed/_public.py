"""Public classes that live in private modules, documented where users import them."""

from __future__ import annotations

import sys

__all__ = ["document_in"]


def document_in(module: str, *classes: type) -> None:
    """Name *module* as each class's home (``__module__``: reprs, tracebacks and pickles
    say ``tradefeed.config.FeedConfig``, where README documents it).

    A class's own string annotations (``from __future__ import annotations``) are first
    resolved where they were written, as ``typing.get_type_hints`` would have resolved
    them there: after the move it would look them up in *module*, which need not import
    the same names.  A name only the type checker imports stays a string.
    """
    for cls in classes:
        written_in = vars(sys.modules[cls.__module__])
        annotations = cls.__dict__.get("__annotations__", {})
        for name, annotation in annotations.items():
            if isinstance(annotation, str):
                try:
                    annotations[name] = eval(annotation, written_in)  # noqa: S307 - typing.get_type_hints does the same
                except NameError:
                    pass
        cls.__module__ = module
