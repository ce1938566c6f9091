"""The package's layout rules, read from the source with `ast` (nothing is imported).

* **No import circles** between modules of ``python/fastregen``, nor between
  its first-level parts (``data``, ``patterns``, ``entropy``, ...): a circle
  means neither side can be understood, tested or moved without the other.
* **No re-export shims**: outside package ``__init__``s, a module does not
  exist only to import names from elsewhere, and its ``__all__`` lists only
  names it defines (a name kept importable from an old home by an import or a
  module ``__getattr__`` is a second home for it).
* **Scripts use public names**: ``benchmarks/*.py`` and
  ``python/fastregen/cli/*.py`` import no private name (``_x``) from another
  fastregen module. The CLI may import its own ``cli/_*.py`` siblings and
  their names, and the top-level ``fastregen._*`` modules (the native core,
  ``_io.atomic_open``, ``_threads``) are the package's shared toolkit whose
  public names anyone may use.

What counts as an import edge, and why:

* every ``import``/``from ... import`` statement anywhere in a module,
  including those inside functions. A function-level (lazy) import only
  defers *when* the circle closes; the two modules still need each other, so
  a circle through a lazy import is a circle. ``importlib.import_module``
  calls are not followed (the top-level ``fastregen.__getattr__`` uses them to
  load subpackages on attribute access, which is not a dependency of one
  module on another);
* ``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
  else to ``pkg``;
* importing ``a.b.c`` from outside package ``a.b`` runs ``a.b``'s (and
  ``a``'s) ``__init__`` first, so it is an edge to those packages as well;
  from inside the package it is not (the ``__init__`` is already running);
  the top-level ``fastregen`` package is left out (everything is inside it).

Every test collects all its violations and reports them together.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "python"
PACKAGE = "fastregen"

# Circles that helper `pipeline` (issue 27 items 1 and 3) removes: memory.py
# <-> dr4sr, and anything inside dr4sr/ and unids/. A strongly connected set
# of modules is allowed only when every member is under one of these. The
# lead empties this after merging `pipeline`.
ALLOWED_CIRCLE_PREFIXES: tuple[str, ...] = ()

# Private names of dr4sr/ internals that benchmarks import: also `pipeline`'s
# (it moves those modules); (script, imported name). Emptied on merge too.
ALLOWED_PRIVATE_IMPORTS: frozenset[tuple[str, str]] = frozenset()


def _module_files() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    mods = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        mods[".".join(parts)] = (path, is_pkg)
    return mods


MODULES = _module_files()


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path, is_pkg: bool):
    """(target module, line, imported name or None) of every fastregen import in a file."""
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, None
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, package)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    yield sub, node.lineno, None
                else:
                    yield target, node.lineno, alias.name


def _owning_module(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> dict[str, dict[str, str]]:
    """module -> {imported module: "file:line" of the first import}."""
    graph: dict[str, dict[str, str]] = {m: {} for m in MODULES}
    for name, (path, is_pkg) in MODULES.items():
        where_base = path.relative_to(ROOT)
        for target, line, _ in _imports(name, path, is_pkg):
            if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                continue
            mod = _owning_module(target)
            if mod is None:
                continue
            hits = [mod]
            parts = mod.split(".")
            for i in range(2, len(parts)):
                ancestor = ".".join(parts[:i])
                if ancestor in MODULES and not (name == ancestor or name.startswith(ancestor + ".")):
                    hits.append(ancestor)
            for hit in hits:
                if hit != name:
                    graph[name].setdefault(hit, f"{where_base}:{line}")
    return graph


def strongly_connected(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected sets of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        members.append(m)
                        if m == node:
                            break
                    if len(members) > 1:
                        found.append(sorted(members))
    return found


def one_cycle(graph: dict[str, dict[str, str]], members: list[str]) -> list[str]:
    """A shortest closed path through the first member, inside the set (breadth first)."""
    inside = set(members)
    start = members[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in inside:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start] + path[::-1][1:] + [start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    return members  # pragma: no cover - a strongly connected set always closes


def _describe(graph, members: list[str]) -> str:
    cycle = one_cycle(graph, members)
    steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return f"{len(members)} modules {members}; e.g.\n      " + "\n      ".join(steps)


def _allowed(members: list[str]) -> bool:
    return all(any(m == p or m.startswith(p + ".") for p in ALLOWED_CIRCLE_PREFIXES) for m in members)


def test_no_module_import_circles():
    graph = import_graph()
    bad = [_describe(graph, s) for s in strongly_connected(graph) if not _allowed(s)]
    assert not bad, "import circles:\n  " + "\n  ".join(bad)


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_circles_between_parts():
    # data -> patterns -> data is a circle even when no two single modules close it.
    graph = import_graph()
    parts: dict[str, dict[str, str]] = {}
    for a, targets in graph.items():
        parts.setdefault(_part(a), {})
        for b, where in targets.items():
            if _part(a) != _part(b):
                parts[_part(a)].setdefault(_part(b), f"{where}: {a} -> {b}")
                parts.setdefault(_part(b), {})
    parts.pop(PACKAGE, None)
    for targets in parts.values():
        targets.pop(PACKAGE, None)
    bad = [_describe(parts, s) for s in strongly_connected(parts) if not _allowed(s)]
    assert not bad, "circles between parts of the package:\n  " + "\n  ".join(bad)


def _all_names(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                try:
                    return list(ast.literal_eval(node.value))
                except ValueError:
                    return []
    return []


def _defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
    return names


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def test_no_reexport_shims():
    bad = []
    for name, (path, is_pkg) in MODULES.items():
        if is_pkg:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        rel = path.relative_to(ROOT)
        body = [n for n in tree.body if not _is_docstring(n)]
        only_imports = all(
            isinstance(n, (ast.Import, ast.ImportFrom)) or "__all__" in _defined(ast.Module(body=[n], type_ignores=[]))
            for n in body
        )
        if body and only_imports:
            bad.append(f"{rel}: only imports (a re-export shim): import from the real home instead")
            continue
        foreign = sorted(set(_all_names(tree)) - _defined(tree))
        if foreign:
            bad.append(f"{rel}: __all__ lists names it does not define: {', '.join(foreign)}")
    assert not bad, "re-exports outside package __init__s:\n  " + "\n  ".join(bad)


def _script_files() -> list[tuple[Path, str, bool]]:
    """(file, its dotted package for relative imports, is a CLI module)."""
    out = [(p, "", False) for p in sorted((ROOT / "benchmarks").glob("*.py"))]
    out += [(path, name if is_pkg else name.rpartition(".")[0], True)
            for name, (path, is_pkg) in MODULES.items() if name.startswith(f"{PACKAGE}.cli")]
    return out


def _toolkit_module(name: str) -> bool:
    # fastregen/_x.py, or the compiled core (whose interface is _core.pyi).
    return any((SRC / PACKAGE / f"{name}{suffix}").exists() for suffix in (".py", ".pyi"))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_scripts_import_only_public_names():
    bad = []
    for path, package, is_cli in _script_files():
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(node, package)
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                target, names = "", [a.name for a in node.names]
            else:
                continue
            for imported in names:
                full = f"{target}.{imported}" if target else imported
                if not full.startswith(PACKAGE + "."):
                    continue
                if is_cli and full.startswith(f"{PACKAGE}.cli."):
                    continue  # the CLI's own modules
                parts = full.split(".")
                private = [p for p in parts[1:] if _private(p)]
                if private[:1] == [parts[1]] and _toolkit_module(parts[1]):
                    private = private[1:]  # fastregen._io etc. themselves
                if private and (str(rel), full) not in ALLOWED_PRIVATE_IMPORTS:
                    bad.append(f"{rel}:{node.lineno}: imports private {full}")
    assert not bad, "scripts importing private names:\n  " + "\n  ".join(bad)
