"""Constrained hybrid-decoding argmax: triton kernel (interpreted) and the chunked torch path vs full logits.

Scores are built from small integers, so every dot product is exact in fp32
whatever the summation order: the three paths must then agree exactly, ties
included (lowest id wins).
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton decorates anything

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastregen.ops import constrained_argmax, constrained_argmax_naive, constrained_argmax_torch  # noqa: E402
from fastregen.ops import hybrid_decode  # noqa: E402

pytest.importorskip("triton")


def _case(seed, B, D, V, S, T, lo=-2, hi=3, p_gen=0.5):
    g = torch.Generator().manual_seed(seed)
    states = torch.randint(lo, hi, (B, D), generator=g).float()
    table = torch.randint(lo, hi, (V, D), generator=g).float()
    allowed = torch.randint(-1, V, (B, S), generator=g)
    generated = torch.randint(-1, V, (B, T), generator=g)
    generative = torch.rand(B, generator=g) < p_gen
    return states, table, allowed, generated, generative


def _all_paths(case, start=0, stop=None, chunk_size=37):
    kw = dict(vocab_start=start, vocab_stop=stop)
    return {
        "naive": constrained_argmax_naive(*case, **kw),
        "torch": constrained_argmax_torch(*case, chunk_size=chunk_size, **kw),
        "triton": constrained_argmax(*case, backend="triton", **kw),
    }


def _assert_same(results):
    ref_ids, ref_scores = results["naive"]
    for name, (ids, scores) in results.items():
        assert ids.dtype == torch.int64 and scores.dtype == torch.float32, name
        assert torch.equal(ids, ref_ids), f"{name}: ids {ids.tolist()} != {ref_ids.tolist()}"
        assert torch.equal(scores, ref_scores), f"{name}: scores {scores.tolist()} != {ref_scores.tolist()}"


def _brute_force(case, start=0, stop=None):
    """Python loops over the definition, to check the full-logits oracle itself."""
    states, table, allowed, generated, generative = case
    V = table.shape[0]
    stop = V if stop is None else stop
    out = []
    for b in range(states.shape[0]):
        done = set(generated[b].tolist())
        pool = range(start, stop) if generative[b] else sorted(set(allowed[b].tolist()))
        cands = [v for v in pool if start <= v < stop and v not in done]
        if not cands:
            out.append(-1)
            continue
        scores = [float(states[b] @ table[v]) for v in cands]
        out.append(cands[scores.index(max(scores))])  # cands ascending: first = lowest id
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    B=st.integers(1, 20),
    D=st.integers(1, 40),
    V=st.integers(1, 400),
    S=st.integers(0, 9),
    T=st.integers(0, 5),
    p_gen=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_exact_agreement_random(seed, B, D, V, S, T, p_gen):
    case = _case(seed, B, D, V, S, T, p_gen=p_gen)
    start = seed % 3 if V > 3 else 0
    stop = V - (seed % 2) if V > 3 else V
    res = _all_paths(case, start, stop, chunk_size=1 + seed % 97)
    _assert_same(res)
    assert res["naive"][0].tolist() == _brute_force(case, start, stop)


@pytest.mark.parametrize("V", [1, 127, 128, 129, 300, 1000])
@pytest.mark.parametrize("B", [1, 16, 17])
def test_vocab_not_multiple_of_tile_and_row_blocks(V, B):
    case = _case(V * 31 + B, B, 24, V, 6, 3)
    _assert_same(_all_paths(case, 0, None))


def test_ties_are_broken_by_lowest_id():
    V, D = 260, 8
    table = torch.ones(V, D)
    states = torch.ones(4, D)
    allowed = torch.tensor([[9, 3, 7], [200, 150, -1], [5, 5, -1], [-1, -1, -1]])
    generated = torch.tensor([[-1], [150], [-1], [-1]])
    generative = torch.tensor([True, False, False, True])
    case = (states, table, allowed, generated, generative)
    res = _all_paths(case, 2, V)
    _assert_same(res)
    assert res["triton"][0].tolist() == [2, 200, 5, 2]
    # ties across vocabulary tiles: the same best score in tiles 0, 1 and 2
    table = torch.zeros(V, D)
    table[[250, 130, 70]] = 1.0
    res = _all_paths((states[:1], table, allowed[:1], generated[:1], generative[:1]), 0, V)
    _assert_same(res)
    assert res["triton"][0].tolist() == [70]


def test_all_masked_rows_give_minus_one():
    V, D = 140, 16
    states, table, _, _, _ = _case(3, 5, D, V, 1, 1)
    allowed = torch.tensor([[-1, -1], [4, 6], [0, 1], [7, 8], [3, -1]])
    generated = torch.full((5, V), -1)
    generated[1, :2] = torch.tensor([4, 6])         # restrictive row: everything allowed already generated
    generated[4] = torch.arange(V)                  # generative row: whole vocabulary generated
    generative = torch.tensor([False, False, False, True, True])
    case = (states, table, allowed, generated, generative)
    res = _all_paths(case, 2, V)
    _assert_same(res)
    ids, scores = res["triton"]
    # row 0: no allowed ids; row 1: all generated; row 2: allowed ids below vocab_start
    assert ids.tolist()[:3] == [-1, -1, -1] and ids[4] == -1 and ids[3] >= 2
    assert torch.isinf(scores[[0, 1, 2, 4]]).all()
    # an empty id range leaves every row without a candidate
    res = _all_paths(case, 50, 50)
    _assert_same(res)
    assert res["triton"][0].tolist() == [-1] * 5


def test_empty_allowed_and_generated_matrices():
    states, table, _, _, generative = _case(5, 3, 8, 50, 0, 0)
    case = (states, table, torch.zeros(3, 0, dtype=torch.long), torch.zeros(3, 0, dtype=torch.long),
            torch.tensor([True, False, True]))
    res = _all_paths(case)
    _assert_same(res)
    assert res["triton"][0][1] == -1


def test_random_float_scores_agree():
    # real-valued data: sums differ in the last bits between paths, but with
    # continuous scores near-ties have probability ~0, so ids must agree
    g = torch.Generator().manual_seed(7)
    B, D, V = 9, 64, 700
    case = (torch.randn(B, D, generator=g), torch.randn(V, D, generator=g),
            torch.randint(-1, V, (B, 12), generator=g), torch.randint(-1, V, (B, 4), generator=g),
            torch.rand(B, generator=g) < 0.5)
    res = _all_paths(case, 1, V - 2, chunk_size=100)
    for name in ("torch", "triton"):
        assert torch.equal(res[name][0], res["naive"][0]), name
        torch.testing.assert_close(res[name][1], res["naive"][1], atol=1e-4, rtol=1e-5)


def test_finishing_kernel_loops_over_many_tiles(monkeypatch):
    # shrink the blocks so that the second stage needs several iterations
    monkeypatch.setattr(hybrid_decode, "_BLOCK_V", 16)
    monkeypatch.setattr(hybrid_decode, "_BLOCK_T", 16)
    case = _case(11, 3, 16, 600, 4, 2, p_gen=1.0)
    _assert_same(_all_paths(case, 1, 599))


def test_int32_ids_accepted():
    s, t, a, g, m = _case(2, 4, 8, 60, 5, 2)
    want = constrained_argmax_naive(s, t, a, g, m)
    got = constrained_argmax(s, t, a.int(), g.int(), m, backend="triton")
    assert torch.equal(got[0], want[0])


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(allowed=torch.tensor([[0, 60]])), ValueError, "allowed holds id 60"),
        (dict(generated=torch.tensor([[-2]])), ValueError, "generated holds id -2"),
        (dict(allowed=torch.tensor([[1.0]])), TypeError, "int32/int64"),
        (dict(generative=torch.tensor([1])), TypeError, "bool"),
        (dict(generative=torch.tensor([True, False])), ValueError, "generative must have shape"),
        (dict(states=torch.zeros(1, 7)), ValueError, "D = 7"),
        (dict(states=torch.zeros(8)), ValueError, "states must have shape"),
        (dict(allowed=torch.zeros(2, 1, dtype=torch.long)), ValueError, "allowed must have shape"),
    ],
)
def test_bad_inputs(change, exc, match):
    args = dict(states=torch.zeros(1, 8), table=torch.zeros(60, 8), allowed=torch.tensor([[1, 2]]),
                generated=torch.tensor([[-1]]), generative=torch.tensor([True]))
    args.update(change)
    for fn in (constrained_argmax_torch, constrained_argmax_naive):
        with pytest.raises(exc, match=match):
            fn(**args)


def test_bad_range_and_chunk():
    case = _case(0, 2, 4, 10, 2, 1)
    with pytest.raises(ValueError, match="vocab_start <= vocab_stop"):
        constrained_argmax(*case, vocab_start=5, vocab_stop=3)
    with pytest.raises(ValueError, match="vocab_start <= vocab_stop"):
        constrained_argmax(*case, vocab_stop=11)
    with pytest.raises(ValueError, match="chunk_size"):
        constrained_argmax(*case, chunk_size=0)


_PATHS = {
    "naive": lambda *c, **kw: constrained_argmax_naive(*c, **kw),
    "torch": lambda *c, **kw: constrained_argmax_torch(*c, chunk_size=3, **kw),
    "triton": lambda *c, **kw: constrained_argmax(*c, backend="triton", **kw),
    "auto": lambda *c, **kw: constrained_argmax(*c, **kw),
}


def _nonfinite_case(where, value):
    case = list(_case(1, 4, 6, 20, 5, 2))
    case[4] = torch.tensor([True, False, True, False])  # generative and restrictive rows
    t = case[0] if where == "states" else case[1]
    t[1, 2] = value
    return case


@pytest.mark.parametrize("path", sorted(_PATHS))
@pytest.mark.parametrize("where", ["states", "table"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_scores_are_an_error_on_every_path(path, where, value):
    # Issue 21: a NaN state on a restrictive row gave id 2147483647 (torch),
    # the full-logits path a real id, triton -1: now every path refuses it.
    case = _nonfinite_case(where, value)
    with pytest.raises(ValueError, match=rf"{where} row 1 holds {value}; constrained_argmax needs finite"):
        _PATHS[path](*case)


@pytest.mark.parametrize("path", sorted(_PATHS))
def test_scores_that_could_overflow_float32_are_an_error(path):
    case = list(_case(2, 3, 4, 10, 2, 1))
    case[0] = case[0] * 1e20
    case[1] = case[1] * 1e20  # finite, but products reach 1e40
    with pytest.raises(ValueError, match="too large for float32 scores"):
        _PATHS[path](*case)
    case[1] = case[1] / 1e20  # 1e20 * 3 * 4 is fine
    _assert_same({name: fn(*case) for name, fn in _PATHS.items()})


@pytest.mark.parametrize("path", ["torch", "triton", "auto"])
def test_table_max_abs_given_once_gives_the_same_result(path):
    # hybrid inference checks its item table once (table_max_abs) instead of at every step
    case = list(_case(3, 12, 8, 300, 5, 3))
    bound = hybrid_decode.table_max_abs(case[1])
    assert bound == float(case[1].abs().max())
    _assert_same({"naive": constrained_argmax_naive(*case, vocab_start=1),
                  path: _PATHS[path](*case, vocab_start=1, table_max_abs=bound)})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_table_max_abs_checks_the_table_and_the_bound_is_checked(value):
    case = _nonfinite_case("table", value)
    with pytest.raises(ValueError, match=rf"table row 1 holds {value}; constrained_argmax needs finite"):
        hybrid_decode.table_max_abs(case[1])
    with pytest.raises(ValueError, match=r"table must be a \(V, D\) tensor"):
        hybrid_decode.table_max_abs(torch.zeros(3))
    assert hybrid_decode.table_max_abs(torch.zeros(0, 4)) == 0.0
    case = list(_case(1, 4, 6, 20, 5, 2))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="table_max_abs must be a finite number >= 0"):
            constrained_argmax(*case, table_max_abs=bad)
    case[0][1, 2] = value  # the states are still checked at every call
    with pytest.raises(ValueError, match=rf"states row 1 holds {value}"):
        constrained_argmax(*case, table_max_abs=2.0)
    case[0][1, 2] = 1e20  # and the overflow bound uses the given maximum
    with pytest.raises(ValueError, match="too large for float32 scores"):
        constrained_argmax(*case, table_max_abs=1e20)


def test_many_generative_rows_score_narrower_chunks_alike():
    # ~1000 generative rows: the torch path scores ~2**21 / 1000 ids per chunk, not chunk_size (8192),
    # so the 5000 ids span three chunks
    case = list(_case(4, 1100, 6, 5000, 4, 3, p_gen=0.9))
    _assert_same({"naive": constrained_argmax_naive(*case, vocab_start=1),
                  "torch": constrained_argmax_torch(*case, vocab_start=1)})


@pytest.mark.parametrize("path", sorted(_PATHS))
@pytest.mark.parametrize("B", [0, 3])
def test_empty_vocabulary(path, B):
    # Issue 21: V = 0 with restrictive rows raised IndexError on the torch path.
    states = torch.randn(B, 4)
    table = torch.zeros(0, 4)
    allowed = torch.full((B, 2), -1)
    generated = torch.full((B, 1), -1)
    generative = torch.arange(B) % 2 == 0
    ids, scores = _PATHS[path](states, table, allowed, generated, generative)
    assert ids.tolist() == [-1] * B and ids.dtype == torch.int64
    assert scores.tolist() == [float("-inf")] * B and scores.dtype == torch.float32


_CUDA_CHECK = """
import torch
from fastregen.ops import constrained_argmax, constrained_argmax_naive, mix_memories
g = torch.Generator().manual_seed(0)
B, D, V = 300, 64, 50_000
case = [torch.randint(-2, 3, (B, D), generator=g).float(), torch.randint(-2, 3, (V, D), generator=g).float(),
        torch.randint(-1, V, (B, 40), generator=g), torch.randint(-1, V, (B, 8), generator=g),
        torch.rand(B, generator=g) < 0.5]
case = [t.cuda() for t in case]
want = constrained_argmax_naive(*case, vocab_start=1)
got = constrained_argmax(*case, vocab_start=1, backend="triton")
assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
case[0][3, 5] = float("nan")
for backend in ("triton", "torch"):
    try:
        constrained_argmax(*case, vocab_start=1, backend=backend)
        raise AssertionError("a NaN state was accepted")
    except ValueError as e:
        assert "states row 3 holds nan" in str(e), e
m = torch.randn(8, 50, 5, 64, device="cuda", requires_grad=True)
pi = torch.softmax(torch.randn(8, 5, device="cuda"), -1).requires_grad_()
out = mix_memories(m, pi, backend="triton")
ref = torch.einsum("blkd,bk->bld", m, pi)
torch.testing.assert_close(out, ref)
gm, gp = torch.autograd.grad(out.sum(), (m, pi))
rm, rp = torch.autograd.grad(ref.sum(), (m, pi))
torch.testing.assert_close(gm, rm)
torch.testing.assert_close(gp, rp, atol=1e-3, rtol=1e-4)
"""


@pytest.mark.gpu
def test_compiled_kernels_on_cuda():
    # the interpreter is on in this process: the compiled kernels run in a fresh one
    import subprocess
    import sys

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    subprocess.run([sys.executable, "-c", _CUDA_CHECK], env=env, check=True)
