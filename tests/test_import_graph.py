"""The import graph inside ``refimpl/``: no cycle, and the AD package depends on nothing above it.

Read statically with :mod:`ast` (every ``import`` / ``from … import`` statement, including those inside functions, so
a lazy import is an edge like any other). Nodes are modules (``refimpl.ad.ops``) and packages (``refimpl.ad``, i.e.
its ``__init__.py``). ``from P import n`` is an edge to the submodule ``P.n`` when that module exists, else to ``P``;
``import a.b.c`` is an edge to the longest existing module prefix of ``a.b.c``. Importing a submodule also runs its
parents' ``__init__`` files, but that is Python's loading order, not a dependency of the importing module, so it adds no
edge. The tree is walked afresh on every run, so the test follows files as they move.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "refimpl"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module and package under refimpl/, by dotted name."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported_names(path: Path, name: str):
    """(line, dotted target) of every import statement in the file (relative imports resolved), with each imported
    name of ``from P import a, b`` given as ``P.a``, ``P.b`` alongside ``P`` itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            yield node.lineno, source, tuple(a.name for a in node.names if a.name != "*")


def _resolve(target: str, modules) -> str | None:
    """The longest prefix of ``target`` that is a module under refimpl/ (None for targets outside refimpl)."""
    parts = target.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in modules:
            return candidate
    return None


def import_graph() -> dict[str, dict[str, int]]:
    """{module: {imported refimpl module: line of the first such import}} for every module under refimpl/."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = {}
        for line, source, names in _imported_names(path, name):
            targets = [f"{source}.{n}" for n in names if f"{source}.{n}" in modules]
            if len(targets) < len(names) or not names:  # some names are attributes of `source` itself
                targets.append(source)
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    edges.setdefault(resolved, line)
        graph[name] = edges
    return graph


def external_imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in ``path`` that are not ``refimpl``."""
    name = _module_name(path)
    return {source.split(".")[0] for _, source, _ in _imported_names(path, name)
            if source and not source.startswith("refimpl") and not source.startswith(".")} - {""}


def find_cycle(graph) -> list[str] | None:
    """One cycle ``[m0, m1, …, m0]`` of the directed graph, or None (iterative depth-first search, three colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 unvisited, 1 on the current path, 2 done
    for root in sorted(graph):
        if colour[root]:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        colour[root] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour.get(child, 2) == 1:
                return path[path.index(child):] + [child]
            elif colour.get(child, 2) == 0:
                colour[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def _describe(cycle, graph) -> str:
    paths = _modules()
    return "\n".join(f"  {a} -> {b}  ({paths[a].relative_to(ROOT)} line {graph[a][b]})"
                     for a, b in zip(cycle, cycle[1:]))


# ---------------------------------------------------------------------------------------------------------------------
# the reader of the graph itself


def test_the_walk_sees_the_known_edges():
    graph = import_graph()
    assert "refimpl.ad.tape" in graph and "refimpl.ad.ops" in graph
    assert "refimpl.ad.tape" in graph["refimpl.ad.ops"]  # from refimpl.ad.tape import ...
    assert "refimpl.ad.ops" in graph["refimpl.ad"]  # from refimpl.ad import ops (a submodule)
    assert "refimpl.ad" in graph["refimpl.arguments"]  # from refimpl.ad import Variable (a package attribute)


def test_find_cycle_reports_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) is None
    cycle = find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"a": 1}}) == ["a", "a"]


# ---------------------------------------------------------------------------------------------------------------------
# the properties


def test_the_import_graph_inside_refimpl_has_no_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle inside refimpl/:\n" + _describe(cycle, graph)


def test_the_tape_names_nothing_from_the_primitive_layer():
    graph = import_graph()
    assert set(graph["refimpl.ad.tape"]) == set(), graph["refimpl.ad.tape"]  # no refimpl import at all
    assert external_imports(PACKAGE / "ad" / "tape.py") <= {"__future__", "itertools", "numpy"}
    source = (PACKAGE / "ad" / "tape.py").read_text(encoding="utf-8")
    assert "_ops" not in source
    assert not re.search(r"\bops\.", source), re.search(r".*\bops\..*", source).group(0)


def test_the_ad_package_imports_only_numpy_and_itself():
    graph = import_graph()
    stdlib = set(sys.stdlib_module_names)
    for name in sorted(m for m in graph if m == "refimpl.ad" or m.startswith("refimpl.ad.")):
        outside = {t: line for t, line in graph[name].items() if not (t == "refimpl.ad" or t.startswith("refimpl.ad."))}
        assert not outside, f"{name} imports {outside} (module: line) from outside refimpl.ad"
        path = PACKAGE.joinpath(*name.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        third_party = external_imports(path) - stdlib - {"numpy", "refimpl"}
        assert not third_party, f"{name} imports {sorted(third_party)}"


def test_importing_the_engine_alone_is_harmless_and_variables_have_their_operators():
    import subprocess

    code = ("import refimpl.ad.tape as t, numpy as np\n"
            "from refimpl.ad import grad\n"
            "assert hasattr(t.Variable, '__add__') and hasattr(t.Variable, 'T')\n"
            "print(grad(lambda x: (x * x + 1.0).sum())(np.arange(3.0)))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[0.", "2.", "4.]"]
