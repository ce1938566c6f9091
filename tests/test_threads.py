"""The default thread count (issue 29): one thread on a busy machine, the free cores on an idle one,
and OpenMP's passive wait asked for before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fastregen import _threads
from fastregen.training import TrainConfig


def _fake_stat(monkeypatch, busy_fraction: float):
    """/proc/stat readings in which other processes kept ``busy_fraction`` of every CPU busy."""
    ticks = iter([(0, 0), (int(1000 * busy_fraction), 1000)])
    monkeypatch.setattr(_threads, "_cpu_times", lambda: next(ticks))
    monkeypatch.setattr(_threads.time, "sleep", lambda s: None)


@pytest.mark.parametrize("busy, allowed, expected", [
    (1.0, 2, 1),    # two competing one-thread processes on 2 cores: one thread, never zero
    (0.5, 2, 1),    # one of the two cores busy
    (0.02, 2, 2),   # idle but for a daemon's blip
    (0.0, 1, 1),    # pinned to one CPU
    (0.25, 8, 6),   # 8 cores, two busy
])
def test_free_cores_counts_what_other_processes_leave(monkeypatch, busy, allowed, expected):
    monkeypatch.setattr(_threads, "_allowed_cpus", lambda: allowed)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: max(allowed, 2))
    _fake_stat(monkeypatch, busy * allowed / max(allowed, 2))
    assert _threads.free_cores() == expected


def test_free_cores_reads_this_machine():
    n = _threads.free_cores(window=0.02)
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_auto_is_capped_by_torch_and_ints_pass_through(monkeypatch):
    monkeypatch.setattr(_threads, "free_cores", lambda window=0.1: 64)
    monkeypatch.setattr(_threads, "_TORCH_DEFAULT", 3)
    assert _threads.resolve_threads("auto") == 3
    assert _threads.resolve_threads(5) == 5 and _threads.resolve_threads(0) == 0
    for bad in (-1, "two", 1.5, True):
        with pytest.raises(ValueError, match="num_threads must be 'auto' or an int"):
            _threads.resolve_threads(bad)


def test_apply_threads_sets_torch(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(_threads, "free_cores", lambda window=0.1: 1)
        assert _threads.apply_threads("auto") == 1 == torch.get_num_threads()
        assert _threads.apply_threads(0) == 1  # 0 leaves torch alone
    finally:
        torch.set_num_threads(before)


def test_train_config_default_is_auto_and_checked():
    assert TrainConfig().num_threads == "auto"
    assert TrainConfig(num_threads=0).num_threads == 0
    for bad in (-1, "all", 2.0):
        with pytest.raises(ValueError, match=f"num_threads must be 'auto' or an int >= 0.*{bad!r}"):
            TrainConfig(num_threads=bad)


def _child(code: str, **env) -> str:
    # Not conftest.run_python: it adds this process's environment, where `import fastregen` set the policy.
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    r = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_chooses_the_wait_policy_from_the_load_before_torch_loads():
    # the policy follows the load average at import: fake it, in a child that imports nothing else first
    code = ("import os, sys; os.getloadavg = lambda: ({load}, 0.0, 0.0); import fastregen; "
            "assert 'torch' not in sys.modules; "
            "print(os.environ.get('OMP_WAIT_POLICY', '-'), os.environ.get('GOMP_SPINCOUNT', '-'))")
    busy, idle = code.format(load=50.0), code.format(load=0.0)
    assert _child(busy) == "PASSIVE -"
    assert _child(idle) == "- 10000"
    # the user's own choice wins, either variable
    assert _child(busy, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE -"
    assert _child(idle, GOMP_SPINCOUNT="5") == "- 5"