"""The methods stand on shared blocks, never on each other (STYLE.md's target layout, issue 27 item 3).

Every import of every module under ``python/fastregen`` -- top-level or
inside a function, absolute or relative -- is read with `ast`:

* no module of ``dr4sr/`` (``dr4sr/plus/`` included) imports ``unids/``, and
  no module of ``unids/`` imports ``dr4sr/``;
* the shared blocks ``generator/``, ``training/``, ``patterns/`` and ``data/``
  import no method package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "fastregen"
METHODS = ("fastregen.dr4sr", "fastregen.unids")
SHARED = ("fastregen.generator", "fastregen.training", "fastregen.patterns", "fastregen.data")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The fastregen modules ``path`` imports (``from X import a`` counts as X and X.a)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m == "fastregen" or m.startswith("fastregen.")}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _violations() -> list[str]:
    bad = []
    for path in _modules():
        name = _module_name(path)
        for target in sorted(_imports(path)):
            for method in METHODS:
                other = [m for m in METHODS if m != method]
                if _within(name, method) and any(_within(target, o) for o in other):
                    bad.append(f"{name} (a method) imports {target} (another method)")
            for shared in SHARED:
                if _within(name, shared) and any(_within(target, m) for m in METHODS):
                    bad.append(f"{name} (shared block {shared}) imports {target} (a method)")
    return bad


def test_methods_stand_on_shared_blocks_not_on_each_other():
    assert _violations() == []


def test_the_walk_sees_relative_and_lazy_imports(tmp_path, monkeypatch):
    # the check must fail on what it is there to catch: a lazy relative import of another method
    fake = tmp_path / "fastregen"
    (fake / "unids").mkdir(parents=True)
    (fake / "generator").mkdir()
    (fake / "unids" / "__init__.py").write_text("")
    (fake / "unids" / "x.py").write_text("def f():\n    from ..dr4sr.pipeline import DR4SR\n")
    (fake / "generator" / "__init__.py").write_text("from fastregen.unids import UniDS\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    got = _violations()
    assert "fastregen.unids.x (a method) imports fastregen.dr4sr.pipeline (another method)" in got
    assert any(v.startswith("fastregen.generator (shared block") for v in got)


@pytest.mark.parametrize("package", ["generator", "dr4sr", "unids", "training", "patterns", "data"])
def test_packages_exist(package):
    assert (PACKAGE / package / "__init__.py").is_file()
