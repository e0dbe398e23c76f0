"""The package's shape, read from the source (nothing is imported).

- the library never imports the command line (vsr.cli), not even inside a function;
- no import cycle among the modules' module-level imports;
- only vsr/cli/ parses arguments, prints, draws progress bars or ends the process;
- only vsr/media/ opens PyAV.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vsr"

# Entry points: `python -m vsr` and `python -m vsr.train` (named in vsr/weights/README.md)
# belong to the command line, though they sit outside vsr/cli/.
ENTRY_POINTS = frozenset({"vsr.__main__", "vsr.train.__main__"})


@dataclass(frozen=True)
class Import:
    module: str  # the vsr module (or package) imported, or an outside one such as "av"
    line: int
    lazy: bool  # inside a function: runs only when that function does
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _sources()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, lazy: bool = False, typing_only: bool = False
) -> Iterator[tuple[ast.AST, bool, bool]]:
    """(node, lazy, typing_only) for every node, knowing whether it sits in a function or
    under ``if TYPE_CHECKING``."""
    for child in ast.iter_child_nodes(node):
        yield child, lazy, typing_only
        inner_lazy = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, lazy, True
                yield from _walk(stmt, inner_lazy, True)
            for stmt in child.orelse:
                yield stmt, lazy, typing_only
                yield from _walk(stmt, inner_lazy, typing_only)
            continue
        yield from _walk(child, inner_lazy, typing_only)


def _resolve(name: str) -> str:
    """The most specific known vsr module for a dotted name (vsr.media.probe.probe ->
    vsr.media.probe); outside names are kept as they are."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return name


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node, lazy, typing_only in _walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from vsr.media import probe` imports the module vsr.media.probe.
            names = [f"{base}.{alias.name}" for alias in node.names] or [base]
            names = [n if _resolve(n) in MODULES else base for n in names]
        found += [Import(_resolve(n), node.lineno, lazy, typing_only) for n in names]
    return found


def _library() -> list[str]:
    return [m for m in MODULES if not _in(m, "vsr.cli") and m not in ENTRY_POINTS]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_walk_sees_every_module() -> None:
    assert {"vsr", "vsr.cli", "vsr.batch", "vsr.media.probe", "vsr.cli.upscale"} <= set(MODULES)
    assert any(i.module == "vsr.cli" for i in imports_of("vsr.__main__"))
    assert any(i.module == "vsr.errors" and not i.lazy for i in imports_of("vsr.config"))


def test_the_library_never_imports_the_cli() -> None:
    bad = [
        f"{MODULES[m].relative_to(PACKAGE.parent)}:{i.line} imports {i.module}"
        for m in _library()
        for i in imports_of(m)
        if _in(i.module, "vsr.cli")
    ]
    assert not bad, "the library reaches up into the CLI:\n" + "\n".join(bad)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_at_module_level() -> None:
    """Imports inside functions are lazy by design (start-up time) and left out; a module
    importing its own package's __init__ while that runs is how packages work, also left out."""
    graph = {
        m: {
            i.module
            for i in imports_of(m)
            if not i.lazy and not i.typing_only and i.module in MODULES and not _in(m, i.module)
        }
        for m in MODULES
    }
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _outside_the_cli(node: ast.AST) -> str | None:
    """What a library module must not do, or None."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        names = [a.name for a in node.names]
        modules = names if isinstance(node, ast.Import) else [node.module or ""]
        for banned in ("argparse", "tqdm"):
            if banned in modules:
                return f"imports {banned}"
        if modules == ["sys"] and {"exit", "stdout", "stderr"} & set(names):
            return "imports sys.exit, sys.stdout or sys.stderr"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
        return "calls print()"
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        and node.attr in ("exit", "stdout", "stderr")
    ):
        return f"uses sys.{node.attr}"
    return None


def test_only_the_cli_parses_prints_and_exits() -> None:
    bad = []
    for module in _library():
        path = MODULES[module]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            what = _outside_the_cli(node)
            if what:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {what}")  # type: ignore[attr-defined]
    assert not bad, "only vsr/cli/ may do this:\n" + "\n".join(bad)


def test_only_vsr_media_imports_pyav() -> None:
    bad = [
        f"{MODULES[m].relative_to(PACKAGE.parent)}:{i.line}"
        for m in MODULES
        if not _in(m, "vsr.media")
        for i in imports_of(m)
        if not i.typing_only and _in(i.module, "av")
    ]
    assert not bad, "PyAV opened outside vsr/media/:\n" + "\n".join(bad)


def test_the_readme_map_names_every_module() -> None:
    # "How the code is laid out" is where a new engineer starts: a module it doesn't name is a
    # module nobody will find. (Names only; what the map says of each is for people to keep.)
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("## How the code is laid out")
    section = readme[start : readme.index("\n## ", start + 1)]
    missing = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") and path.name not in section
    ]
    missing += [
        f"{folder.name}/"
        for folder in sorted(PACKAGE.rglob("*"))
        if folder.is_dir()
        and (folder / "__init__.py").exists()
        and f"{folder.name}/" not in section
        and folder != PACKAGE
    ]
    assert not missing, "README's layout map doesn't name: " + ", ".join(missing)
