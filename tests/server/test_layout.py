"""The dev server's module layout, read from its source with ``ast``.

No import cycle among its modules (imports inside functions count: a lazy import is still
a cycle), no module reaches into another's private names, llama_cpp is imported by the
llama engine alone, and the scripted engine does not borrow the client's byte table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import steerlm.server

PACKAGE = "steerlm.server"
FOLDER = Path(steerlm.server.__file__).parent
MODULES = {
    (PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"): path
    for path in sorted(FOLDER.glob("*.py"))
}


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) of every import statement in ``module``."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                parent = PACKAGE.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            found.append((base, [alias.name for alias in node.names]))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from pkg import sub`` is ``pkg.sub``)."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = set()
        for base, names in _imports(module):
            submodules = {f"{base}.{name}" for name in names} & MODULES.keys()
            targets |= submodules or ({base} & MODULES.keys())
        graph[module] = targets - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that returns to its start, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            if (cycle := visit(target, [*path, node])) is not None:
                return cycle
        done.add(node)
        return None

    return next((c for node in sorted(graph) if (c := visit(node, [])) is not None), None)


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    # The layering it implies: routes know the service and the exchange, never the server.
    for routes in ("steerlm.server.nemo_routes", "steerlm.server.openai_routes"):
        assert "steerlm.server.app" not in graph[routes]
    assert "steerlm.server.routes" in graph["steerlm.server.app"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_takes_a_private_name_of_another() -> None:
    for module in MODULES:
        for base, names in _imports(module):
            if base.startswith(PACKAGE):
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                assert not private, f"{module} imports {private} from {base}"


@pytest.mark.parametrize(
    "module", sorted(set(MODULES) - {"steerlm.server.llama_engine"})
)  # the llama engine drives llama_cpp's own internals
def test_no_module_touches_private_attributes_but_its_own(module: str) -> None:
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            owner = node.value
            assert isinstance(owner, ast.Name) and owner.id in ("self", "cls"), (
                f"{module}:{node.lineno} reads {ast.unparse(node)}"
            )


def test_llama_cpp_is_imported_by_the_llama_engine_alone() -> None:
    importers = {
        module
        for module in MODULES
        for base, _ in _imports(module)
        if base.split(".")[0] == "llama_cpp"
    }
    assert importers == {"steerlm.server.llama_engine"}


def test_the_scripted_engine_keeps_its_own_byte_table() -> None:
    imported = {base for base, _ in _imports("steerlm.server.scripted_engine")}
    # Nothing of the client at all: the server is what the client is tested against.
    assert not [b for b in imported if b.split(".")[0] == "steerlm" and not b.startswith(PACKAGE)]
