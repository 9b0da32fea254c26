"""The package's shape, checked from its source: no import cycles between modules, no imports of
another module's private names, and no code outside ``adapterxl/modes.py`` that compares mode names."""

from __future__ import annotations

import ast
from pathlib import Path

import adapterxl
from adapterxl.modes import MODE_NAMES

PACKAGE = Path(adapterxl.__file__).resolve().parent


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def _imports(name: str, tree: ast.Module, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(module imported, names imported from it, line) for every import of an adapterxl module,
    at any depth (an import inside a function is a dependency too)."""
    package = name if name in known and any(k.startswith(name + ".") for k in known) else name.rsplit(".", 1)[0]
    if name == "adapterxl":
        package = "adapterxl"
    found = []
    type_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }  # imports for annotations only do not run
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("adapterxl"):
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            if submodules:
                found += [(s, [], node.lineno) for s in submodules]
                names = [n for n in names if f"{target}.{n}" not in known]
            if names:
                found.append((target, names, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("adapterxl")]
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, tree in modules.items():
        graph[name] = {target for target, _, _ in _imports(name, tree, known) if target in known and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = _graph()
    assert "adapterxl.pipeline" in graph and graph["adapterxl.pipeline"], "the import graph was not read"
    # The package's __init__ re-exports the API: every module may import a sibling through it
    # only by importing the sibling itself, so __init__ is left out of the cycle check.
    graph = {k: {w for w in v if w != "adapterxl"} for k, v in graph.items() if k != "adapterxl"}
    assert _cycles(graph) == []


def test_no_private_imports_across_modules():
    modules = _modules()
    known = set(modules)
    private = [
        f"{name}:{line} imports {target}.{n}"
        for name, tree in modules.items()
        for target, names, line in _imports(name, tree, known)
        for n in names
        if n.startswith("_") and not n.startswith("__") and target != name
    ]
    assert private == []


def _mode_comparisons(tree: ast.Module) -> list[int]:
    """Lines that compare something with a mode's name (``==``, ``!=``, ``in``) or match on it."""
    names = set(MODE_NAMES)

    def is_mode_name(node) -> bool:
        if isinstance(node, ast.Constant) and node.value in names:
            return True
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(is_mode_name(e) for e in node.elts)
        return False

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(is_mode_name(x) for x in [node.left, *node.comparators]):
            lines.append(node.lineno)
        elif isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue):
            if is_mode_name(node.pattern.value):
                lines.append(node.pattern.lineno)
    return lines


def test_mode_comparison_finder():
    assert _mode_comparisons(ast.parse("if mode == 'fuse': pass\nx = m in ('stack', 'z')\ny = a == 'b'")) == [1, 2]


def test_no_mode_name_comparisons_outside_modes():
    found = {
        name: lines
        for name, tree in _modules().items()
        if name != "adapterxl.modes" and (lines := _mode_comparisons(tree))
    }
    assert found == {}
