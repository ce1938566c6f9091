from dataclasses import dataclass
from pathlib import Path

import pytest

from fastregen._io import atomic_open
from fastregen.config import load_config, provenance, save_config


@dataclass(frozen=True)
class _Cfg:
    k: int = 5
    gamma: float = 0.1
    dims: tuple = (64, 64)
    name: str = "x"


def test_yaml_roundtrip(tmp_path):
    cfg = _Cfg(k=3, dims=(1, 2))
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(_Cfg, tmp_path / "c.yaml") == cfg


def test_unknown_key_named(tmp_path):
    (tmp_path / "c.yaml").write_text("k: 1\nbogus: 2\n")
    with pytest.raises(ValueError, match="bogus"):
        load_config(_Cfg, tmp_path / "c.yaml")


def test_atomic_open_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_provenance_records_config():
    rec = provenance(_Cfg(), seed=3)
    assert rec["config"]["k"] == 5 and rec["seed"] == 3 and "fastregen_version" in rec


def test_atomic_open_applies_umask(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "o.txt") as f:
            f.write("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "o.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_open_never_clears_the_umask(tmp_path, monkeypatch):
    # Reading the umask by setting it to 0 lets files other threads create
    # meanwhile come out world-writable; it must be read without that.
    import os

    from fastregen import _io

    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc/self/status (Linux)")
    seen = []
    real = os.umask

    def spy(mask):
        seen.append(mask)
        return real(mask)

    monkeypatch.setattr(_io.os, "umask", spy)
    with atomic_open(tmp_path / "o.txt") as f:
        f.write("x")
    assert 0 not in seen
    assert (tmp_path / "o.txt").stat().st_mode & 0o777 == 0o666 & ~_io._umask()


def test_package_is_lazy_and_exposes_submodules():
    import subprocess
    import sys

    code = (
        "import sys, fastregen; assert 'torch' not in sys.modules, 'import fastregen pulled torch'; "
        "fastregen.patterns.mine_patterns; fastregen.entropy.real_entropy; "
        "assert fastregen.DR4SR.__name__ == 'DR4SR'; assert 'patterns' in dir(fastregen)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- special output paths (issue 21)
def test_atomic_open_writes_through_a_symlink(tmp_path):
    import os

    target = tmp_path / "real" / "data.txt"
    target.parent.mkdir()
    target.write_text("old")
    os.chmod(target, 0o600)
    link = tmp_path / "link.txt"
    link.symlink_to(Path("real") / "data.txt")  # relative, as `ln -s` makes them
    chain = tmp_path / "chain.txt"
    chain.symlink_to(link)
    with atomic_open(chain) as f:
        f.write("new")
    assert chain.is_symlink() and link.is_symlink()  # the links stay links ...
    assert target.read_text() == "new"  # ... and their target is replaced
    assert target.stat().st_mode & 0o777 == 0o600  # with its permissions
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "real" / "later.txt")
    with atomic_open(dangling) as f:
        f.write("created")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.txt").read_text() == "created"


def test_atomic_open_refuses_nodes_that_are_not_regular_files(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"fifo: is a FIFO \(named pipe\); outputs are written to a temporary"):
        with atomic_open(fifo) as f:
            f.write("x")
    assert fifo.is_fifo()
    # a link to a device: before, the link was replaced by a regular file
    # (and as root, --out /dev/null replaced /dev/null itself)
    null = tmp_path / "null"
    null.symlink_to("/dev/null")
    with pytest.raises(ValueError, match=r"null \(-> /dev/null\): is a character device"):
        with atomic_open(null, "wb") as f:
            f.write(b"x")
    assert null.is_symlink() and os.readlink(null) == "/dev/null"
    with pytest.raises(IsADirectoryError, match="is a directory"):
        with atomic_open(tmp_path) as f:
            f.write("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "null"]  # no temp file left


# ---------------------------------------------------------------- packaging (issue 21)
def test_triton_is_only_an_extra():
    # A CPU-only install must not pull ~1 GB of triton: it is the [gpu] extra
    # (and in [test], for the interpreted kernel tests).
    from importlib.metadata import requires

    reqs = [r for r in requires("fastregen") or [] if r.lower().startswith("triton")]
    assert reqs and all("extra ==" in r for r in reqs), reqs
    assert {r.split('extra == "')[1].rstrip('"') for r in reqs} == {"gpu", "test"}


def test_everything_works_without_triton(monkeypatch, capsys):
    import sys

    import torch

    from fastregen import ops, show_config
    from fastregen.ops import _backend

    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` raises ImportError
    _backend.triton_available.cache_clear()
    try:
        assert not _backend.triton_available()
        states, table = torch.randn(3, 4), torch.randn(10, 4)
        ids, _ = ops.constrained_argmax(states, table, torch.full((3, 1), -1), torch.full((3, 1), -1),
                                        torch.ones(3, dtype=torch.bool))
        assert ids.tolist() == (states @ table.T).argmax(1).tolist()
        with pytest.raises(RuntimeError, match="needs the triton package"):
            ops.constrained_argmax(states, table, torch.full((3, 1), -1), torch.full((3, 1), -1),
                                   torch.ones(3, dtype=torch.bool), backend="triton")
        show_config()
        assert "triton" in capsys.readouterr().out
    finally:
        _backend.triton_available.cache_clear()
