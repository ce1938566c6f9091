from dataclasses import dataclass

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
        "fastregen.mining.mine_patterns; fastregen.entropy.real_entropy; "
        "assert fastregen.DR4SR.__name__ == 'DR4SR'; assert 'mining' in dir(fastregen)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
