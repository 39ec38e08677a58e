"""The package's shape: no import cycles between its modules, and the one piece of
websocket-client internals the frame loop reads is still there."""

from __future__ import annotations

import ast
from pathlib import Path

import websocket

PACKAGE = Path(__file__).resolve().parents[2] / "tradefeed"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_level(tree: ast.Module):
    """The module's statements outside functions and classes (``if TYPE_CHECKING:``,
    ``try:`` blocks included: a reader sees those imports at the top).  An import inside
    a function runs when it is called: that is how a module reaches an optional extra or
    the module that uses it, and is not an import-time dependency."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


def imports(path: Path, name: str) -> set[str]:
    """Every tradefeed module *path* imports at module level (TYPE_CHECKING included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in module_level(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("tradefeed"):
                found.add(target)
                found.update("%s.%s" % (target, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tradefeed"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        # an import of a package's name is an edge to its __init__ only when it is a module
        edges[name] = {t for t in imports(path, name) if t in modules and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_module_of_the_package_imports_itself_back_through_another():
    """Package __init__ modules re-export their members; edges into them are not counted,
    since importing a submodule always runs its package first."""
    edges = graph()
    packages = {name for name in edges if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()}
    for name in edges:
        edges[name] -= packages
    assert cycles(edges) == []


def test_the_websocket_client_internals_the_frame_loop_reads_still_exist():
    """``_mid_message`` tells a fragmented message by ``cont_frame.recving_frames``
    (setup.cfg bounds websocket-client to the versions tested); if a release renames it,
    this fails here rather than silently mis-reading fragments."""
    ws = websocket.WebSocket()
    assert hasattr(ws, "cont_frame") and hasattr(ws.cont_frame, "recving_frames")
    assert ws.cont_frame.recving_frames is None  # not inside a fragmented message


def public_classes():
    """(module, name, class) for every class a public module exports (``__all__``)."""
    import importlib
    import inspect

    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if any(part.startswith("_") for part in name.split(".")) or name.startswith("tradefeed.simulator"):
            continue  # private modules; the simulator is a tool, documented as a whole
        module = importlib.import_module(name)
        for export in getattr(module, "__all__", ()):
            value = getattr(module, export)
            if inspect.isclass(value) and value.__module__.startswith("tradefeed"):
                yield name, export, value


def test_public_classes_name_a_public_home_and_their_annotations_resolve():
    """A public class defined in a private module names where it is documented
    (``tradefeed.config.FeedConfig``: reprs, tracebacks, pickles), and the move keeps
    ``typing.get_type_hints`` working on it (dataclass and serialization tools use it)."""
    import typing

    checked = 0
    for module, name, cls in public_classes():
        home = cls.__module__.split(".")
        assert not any(part.startswith("_") for part in home), "%s.%s claims %s" % (module, name, cls.__module__)
        typing.get_type_hints(cls)
        checked += 1
    assert checked > 30
    from tradefeed.connection import ConnectionSettings
    from tradefeed.config import FeedConfig

    assert repr(ConnectionSettings).endswith("tradefeed.connection.ConnectionSettings'>")
    assert typing.get_type_hints(FeedConfig)["backoff"] is not str
