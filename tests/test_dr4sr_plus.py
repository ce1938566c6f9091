"""DR4SR+: the personalizer, the implicit hypergradient, the upper level on the Trainer, the pipeline, CLI, figure.

References are independent of the implementation: closed forms and finite
differences of a quadratic lower problem, explicit Hessians of a tiny
network, the uniform distribution, exact step arithmetic.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fastregen.data import SequenceDataset, concat, leave_one_out
from fastregen.dr4sr import DR4SR, RegenConfig
from fastregen.dr4sr.plus import (
    NeumannDivergenceError,
    NeumannDivergenceWarning,
    PersonalizedWeights,
    Personalizer,
    PersonalizerHook,
    PlusConfig,
    check_hidden_states,
    load_personalizer,
    load_weights,
    neumann_hypergradient,
    personalize,
    pinned_interactions,
    plot_weights,
    save_personalizer,
    sequence_weights,
    split_dev,
)
from fastregen.dr4sr.plus import bilevel
from fastregen.dr4sr.plus.figure import weight_panel
from fastregen.models import build_model
from fastregen.training import CallbackHook, Examples, NextItemLoss, Trainer

from test_dr4sr_pipeline import TINY, planted_data

SMALL = dict(progress=False, embed_dim=16, max_len=12, batch_size=32, num_threads=1)


# ------------------------------------------------------------------ hypergradient: quadratic lower problem
def _quadratic(A, B, c, phi0):
    """L_train = 1/2 th'A th - th'B phi, L_dev = 1/2 |th - c|^2 at the lower optimum th* = A^-1 B phi."""
    A_, B_, c_ = (torch.as_tensor(x, dtype=torch.float64) for x in (A, B, c))
    phi = torch.tensor(phi0, dtype=torch.float64, requires_grad=True)
    theta_star = np.linalg.solve(A, B @ phi0)
    theta = torch.tensor(theta_star, dtype=torch.float64, requires_grad=True)
    train = 0.5 * theta @ A_ @ theta - theta @ (B_ @ phi)
    dev = 0.5 * ((theta - c_) ** 2).sum()
    return dev, train, theta, phi, theta_star


def _spd(n, lo, hi, rng):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return q @ np.diag(rng.uniform(lo, hi, n)) @ q.T


def test_hypergradient_of_a_quadratic_matches_the_closed_form_and_finite_differences():
    rng = np.random.default_rng(0)
    n, m = 6, 3
    A, B, c, phi0 = _spd(n, 0.3, 1.5, rng), rng.normal(size=(n, m)), rng.normal(size=n), rng.normal(size=m)
    closed = B.T @ np.linalg.solve(A, np.linalg.solve(A, B @ phi0) - c)

    # the closed form itself against central differences of phi -> L_dev(theta*(phi))
    def f(p):
        return 0.5 * np.sum((np.linalg.solve(A, B @ p) - c) ** 2)

    eps = 1e-6
    fd = np.array([(f(phi0 + eps * e) - f(phi0 - eps * e)) / (2 * eps) for e in np.eye(m)])
    np.testing.assert_allclose(closed, fd, rtol=1e-6, atol=1e-8)

    # alpha = 1 (eq. 10 as printed): the series converges to the closed form (eigenvalues of I - A in (-0.5, 0.7))
    dev, train, theta, phi, _ = _quadratic(A, B, c, phi0)
    hg = neumann_hypergradient(dev, train, [theta], [phi], K=300, alpha=1.0)
    np.testing.assert_allclose(hg.grads[0].numpy(), closed, rtol=1e-9, atol=1e-10)
    assert not hg.diverging

    # another alpha: alpha * result -> the closed form (the 1/alpha the released code leaves in)
    dev, train, theta, phi, _ = _quadratic(A, B, c, phi0)
    hg = neumann_hypergradient(dev, train, [theta], [phi], K=600, alpha=0.4)
    np.testing.assert_allclose(0.4 * hg.grads[0].numpy(), closed, rtol=1e-8, atol=1e-10)

    # truncated at K = 3: B' sum_{n<=3} (I - alpha A)^n (theta* - c), by explicit matrix powers
    alpha = 0.7
    dev, train, theta, phi, theta_star = _quadratic(A, B, c, phi0)
    hg = neumann_hypergradient(dev, train, [theta], [phi], K=3, alpha=alpha)
    M = np.eye(n) - alpha * A
    series = sum(np.linalg.matrix_power(M, k) for k in range(4))
    np.testing.assert_allclose(hg.grads[0].numpy(), B.T @ series @ (theta_star - c), rtol=1e-10)
    norms = [np.linalg.norm(np.linalg.matrix_power(M, k) @ (theta_star - c)) for k in range(4)]
    np.testing.assert_allclose(hg.term_norms, norms, rtol=1e-10)


def test_one_dimensional_neumann_factor_is_1_875_against_exact_2():
    a, b, c, phi0 = 0.5, 1.3, 0.4, 0.9
    dev, train, theta, phi, theta_star = _quadratic(np.array([[a]]), np.array([[b]]), np.array([c]), np.array([phi0]))
    hg = neumann_hypergradient(dev, train, [theta], [phi], K=3, alpha=1.0)
    exact = b / a * (theta_star[0] - c)  # B' A^-1 (theta* - c)
    assert hg.grads[0].item() == pytest.approx(1.875 * b * (theta_star[0] - c), rel=1e-12)
    assert hg.grads[0].item() / exact == pytest.approx(1.875 / 2, rel=1e-12)
    assert hg.rate == pytest.approx(0.5)  # |1 - alpha a| per term


def test_divergent_series_is_flagged_and_the_hook_raises_or_warns():
    # rho(I - alpha A) = |1 - 5 * 0.5| = 1.5 > 1
    dev, train, theta, phi, _ = _quadratic(np.array([[0.5]]), np.array([[1.0]]), np.array([0.0]), np.array([1.0]))
    hg = neumann_hypergradient(dev, train, [theta], [phi], K=3, alpha=5.0)
    assert hg.diverging and hg.rate == pytest.approx(1.5) and hg.growth == pytest.approx(1.5**3)
    # alpha = 3 gives |1 - 1.5| = 0.5: converging
    dev, train, theta, phi, _ = _quadratic(np.array([[0.5]]), np.array([[1.0]]), np.array([0.0]), np.array([1.0]))
    assert not neumann_hypergradient(dev, train, [theta], [phi], K=3, alpha=3.0).diverging

    data, train = _tiny()
    big = dict(warmup_epochs=0, interval=2, alpha=1e4)
    with pytest.raises(NeumannDivergenceError, match="diverges.*use a smaller alpha"):
        personalize(data, train, "sasrec", plus=PlusConfig(**big, on_divergence="raise"), epochs=1, **SMALL)
    with pytest.warns(NeumannDivergenceWarning, match="step skipped"):
        res = personalize(data, train, "sasrec", plus=PlusConfig(**big, on_divergence="skip"), epochs=1, **SMALL)
    assert res["upper_skipped"] > 0 and res["upper_steps"] == 0
    assert res["history"][0]["upper_skipped"] == res["upper_skipped"]


def test_hypergradient_of_a_small_network_matches_explicit_hessians():
    """Several parameter tensors, one unused in L_train, a non-quadratic loss: against torch's full Hessian."""
    torch.manual_seed(0)
    x, y = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    xd, yd = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    shapes = [(4, 3), (4,), (2,)]  # W, v, and an unused tensor
    sizes = [math.prod(s) for s in shapes]
    theta0 = torch.randn(sum(sizes), dtype=torch.float64) * 0.5
    phi0 = torch.randn(3, dtype=torch.float64) * 0.5

    def unpack(t):
        parts = torch.split(t, sizes)
        return [p.reshape(s) for p, s in zip(parts, shapes)]

    def f_train(t, ph):
        W, v, _ = unpack(t)
        w = torch.sigmoid(x @ ph)  # per-example weights from phi
        pred = torch.tanh(x @ W.T) @ v
        return (w * (pred - y) ** 2).mean() + 0.1 * (W**2).sum()  # the third tensor is not in L_train

    def f_dev(t):
        W, v, _ = unpack(t)
        return ((torch.tanh(xd @ W.T) @ v - yd) ** 2).mean()

    alpha, K = 0.3, 4
    H = torch.autograd.functional.hessian(lambda t: f_train(t, phi0), theta0)
    mixed = torch.autograd.functional.jacobian(
        lambda ph: torch.autograd.functional.jacobian(lambda t: f_train(t, ph), theta0, create_graph=True), phi0)
    g = torch.autograd.functional.jacobian(f_dev, theta0)
    M = torch.eye(theta0.numel(), dtype=torch.float64) - alpha * H
    p = sum(torch.linalg.matrix_power(M, k) @ g for k in range(K + 1))
    expected = -(mixed.T @ p)

    params = [t.clone().requires_grad_(True) for t in unpack(theta0)]
    phi = phi0.clone().requires_grad_(True)
    flat = torch.cat([q.reshape(-1) for q in params])
    hg = neumann_hypergradient(f_dev(flat), f_train(flat, phi), params, [phi], K=K, alpha=alpha)
    torch.testing.assert_close(hg.grads[0], expected, rtol=1e-9, atol=1e-12)


def test_neumann_arguments_are_checked():
    dev, train, theta, phi, _ = _quadratic(np.array([[0.5]]), np.array([[1.0]]), np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="K must be an int >= 0, got -1"):
        neumann_hypergradient(dev, train, [theta], [phi], K=-1)
    with pytest.raises(ValueError, match="alpha must be > 0, got 0"):
        neumann_hypergradient(dev, train, [theta], [phi], alpha=0)
    # K = 0: first order, -(d2L/dphi dtheta)' grad L_dev = B (theta* - c)
    hg = neumann_hypergradient(dev, train, [theta], [phi], K=0, alpha=1.0)
    assert hg.grads[0].item() == pytest.approx(float(theta.detach()[0])) and hg.rate == 1.0


# ------------------------------------------------------------------ the personalizer and its weights
def _tiny(n=120, seed=0):
    data = planted_data(n=n, seed=seed)
    return data, leave_one_out(data).train


def _batch(data, max_len=12, size=16, mode="all"):
    ex = Examples(data, max_len, mode)
    return ex, ex.batch(np.arange(min(size, len(ex))))


def test_weights_are_in_the_open_unit_interval_zero_at_padding_one_when_pinned():
    data, train = _tiny()
    tagged = concat(train, planted_data(n=30, seed=3), num_items=data.num_items, sources=["original", "patterns"])
    ex, batch = _batch(tagged, size=len(tagged))
    torch.manual_seed(1)
    p = Personalizer(8, tau=1.0)
    hidden = torch.randn(*batch.inputs.shape, 8) * 3
    pinned = pinned_interactions(tagged, ["patterns"])
    w = PersonalizedWeights(p, pinned)(None, batch, hidden)
    valid = batch.targets > 0
    assert torch.all(w[~valid] == 0)
    seq = ex.sequence_of(batch.index.numpy())
    is_pattern = torch.from_numpy((seq >= len(train)) & (seq >= 0))
    assert torch.all(w[valid & is_pattern] == 1)
    free = w[valid & ~is_pattern]
    assert free.numel() > 100 and torch.all((free > 0) & (free < 1))
    # untagged sets cannot be pinned; unknown sources are named
    with pytest.raises(ValueError, match="tagged with its sources"):
        pinned_interactions(train, ["patterns"])
    with pytest.raises(ValueError, match=r"unknown source\(s\) \['mined'\]"):
        pinned_interactions(tagged, ["mined"])


def test_tau_one_with_equal_logits_gives_uniform_weights():
    from scipy.stats import kstest

    p = Personalizer(4, tau=1.0)
    with torch.no_grad():
        p.fc2.weight.zero_()  # z_0 = z_1 whatever h
    w = p(torch.randn(40_000, 4), generator=torch.Generator().manual_seed(0)).detach().numpy()
    assert kstest(w, "uniform").pvalue > 0.01
    assert abs(w.mean() - 0.5) < 0.01 and abs(w.var() - 1 / 12) < 0.003
    # the noise-free weight of equal logits is exactly 1/2; tau = 10 shrinks the spread
    assert torch.all(p(torch.randn(5, 4), noise=False) == 0.5)
    p10 = Personalizer(4, tau=10.0)
    with torch.no_grad():
        p10.fc2.weight.zero_()
    assert p10(torch.randn(40_000, 4)).var().item() < 0.005


def test_all_weights_one_give_exactly_the_unweighted_loss():
    data, train = _tiny()
    tagged = concat(train, num_items=data.num_items, sources=["original"])
    ex, batch = _batch(tagged, size=64)
    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, embed_dim=16, max_len=12)
    model.eval()
    for weights in (PersonalizedWeights(Personalizer(16), pinned_interactions(tagged, ["original"])),  # all pinned
                    PersonalizedWeights(Personalizer(16))):
        if weights.pinned is None:
            weights.active = False  # warm-up: w = 1
        plain = NextItemLoss("bce", 1)(model, batch, torch.Generator().manual_seed(3))
        weighted = NextItemLoss("bce", 1, weight_fn=weights)(model, batch, torch.Generator().manual_seed(3))
        assert torch.equal(plain.total, weighted.total)


def test_contrastive_term_is_never_weighted():
    data, train = _tiny()
    ex, batch = _batch(train, size=32)
    model = build_model("cl4srec", data.num_items, embed_dim=16, max_len=12)
    zero = NextItemLoss("bce", 1, weight_fn=lambda m, b, h: torch.zeros_like(b.weights))
    plain = NextItemLoss("bce", 1)
    torch.manual_seed(0)
    a = zero(model, batch, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    b = plain(model, batch, torch.Generator().manual_seed(1))
    assert a.total.item() == 0 and b.total.item() > 0
    assert a.aux is not None and torch.equal(a.aux, b.aux)


def test_hidden_states_per_position_are_required():
    class Pooled(torch.nn.Module):
        name = "pooled"

        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)

        def forward(self, seqs, timestamps=None):
            return self.emb(seqs).mean(1)  # (B, d): one state per sequence

    with pytest.raises(ValueError, match="model 'pooled' returns \\(1, 4\\).*one per position"):
        check_hidden_states(Pooled())
    data, train = _tiny()
    ex, batch = _batch(train, size=4)
    w = PersonalizedWeights(Personalizer(4))
    with pytest.raises(ValueError, match="hidden states of shape \\(4, 4\\)"):
        w(Pooled(), batch, torch.randn(4, 4))
    assert check_hidden_states(build_model("gru4rec", 20, embed_dim=8, max_len=5)) == 8


# ------------------------------------------------------------------ the upper level on the Trainer
def _trainer_setup(plus, model="sasrec", seed=0, optimizer_owns_phi=False):
    data, train = _tiny()
    lower, dev = split_dev(train, plus)
    torch.manual_seed(seed)
    net = build_model(model, data.num_items, embed_dim=16, max_len=12)
    p = Personalizer(16, tau=plus.tau)
    weights = PersonalizedWeights(p, differentiable=plus.mode == "end_to_end")
    hook = PersonalizerHook(p, weights, plus, dev=None if dev is None else Examples(dev, 12), batch_size=32)
    params = list(net.parameters()) + (list(p.parameters()) if optimizer_owns_phi else [])
    trainer = Trainer(net, NextItemLoss("bce", 1, weight_fn=weights), optimizer=torch.optim.Adam(params, 1e-3),
                      hooks=[hook], batch_size=32, progress=False)
    return trainer, hook, p, Examples(lower, 12)


def test_one_upper_step_every_interval_lower_steps_after_warmup():
    plus = PlusConfig(interval=7, warmup_epochs=2, dev="train_batch")
    trainer, hook, p, examples = _trainer_setup(plus)
    at = []
    original = hook.upper_step
    hook.upper_step = lambda tr: (at.append((tr.epoch, tr.step_count)), original(tr))
    epochs = 5
    trainer.fit(examples, epochs)
    per_epoch = math.ceil(len(examples) / 32)
    expected = [s for s in range(2 * per_epoch + 1, epochs * per_epoch + 1) if s % 7 == 0]
    assert [s for _, s in at] == expected and hook.upper_steps == len(expected)
    assert all(e >= 2 for e, _ in at)
    assert [r.get("upper_steps", 0) for r in trainer.history][2:] == [
        sum(1 for s in expected if (e * per_epoch) < s <= (e + 1) * per_epoch) for e in range(2, epochs)]
    # warm-up epochs are unweighted: no weight statistics recorded
    assert "weight_mean" not in trainer.history[0] and "weight_mean" in trainer.history[2]


def test_dev_batches_hold_as_many_targets_as_a_lower_batch():
    trainer, hook, p, examples = _trainer_setup(PlusConfig(warmup_epochs=0, dev_fraction=0.3))
    trainer.fit(examples, 1)
    per_row = hook.dev.total_targets / len(hook.dev)
    assert hook.dev_rows == max(1, round(trainer.targets_per_batch / per_row))
    sizes = [hook._dev_batches.next("cpu").inputs.shape[0] for _ in range(math.ceil(len(hook.dev) / hook.dev_rows))]
    assert max(sizes) == min(hook.dev_rows, len(hook.dev)) and sum(sizes) == len(hook.dev)
    trainer, hook, p, examples = _trainer_setup(PlusConfig(warmup_epochs=0, dev_batch_size=7))
    trainer.fit(examples, 1)
    assert hook.dev_rows == 7
    trainer, hook, p, examples = _trainer_setup(PlusConfig(warmup_epochs=0, dev="train_batch"))
    trainer.fit(examples, 1)
    assert hook.dev_rows == 32  # the batch size


def test_bilevel_phi_moves_only_by_the_hypergradient(monkeypatch):
    plus = PlusConfig(interval=5, warmup_epochs=0, upper_momentum=0.0, upper_weight_decay=0.0, upper_lr=0.1,
                      clip=None)
    trainer, hook, p, examples = _trainer_setup(plus)
    # a known hypergradient: phi must move by exactly -lr * it at each upper step, and nowhere else
    fixed = [torch.full_like(t, 0.01) for t in p.parameters()]
    calls = []

    def fake(dev_loss, train_loss, params, hparams, **kw):
        calls.append(1)
        return bilevel.Hypergradient(grads=[f.clone() for f in fixed], term_norms=[1.0, 1.0])

    monkeypatch.setattr(bilevel, "neumann_hypergradient", fake)
    snapshots = []

    def check(tr, batch, loss):
        assert all(q.grad is None for q in p.parameters()), "a lower step left a gradient on phi"
        snapshots.append((tr.step_count, [q.detach().clone() for q in p.parameters()]))

    trainer.hooks.append(CallbackHook(step=check))
    start = [q.detach().clone() for q in p.parameters()]
    trainer.fit(examples, 2)
    prev = start
    for step, now in snapshots:
        moved = [n - o for n, o in zip(now, prev)]
        if step % 5 == 0:
            for d, f in zip(moved, fixed):
                torch.testing.assert_close(d, -0.1 * f, rtol=1e-4, atol=1e-7)
        else:
            assert all(torch.equal(n, o) for n, o in zip(now, prev)), f"phi moved at lower step {step}"
        prev = now
    assert len(calls) == hook.upper_steps == len(snapshots) // 5


def test_optimizer_ownership_of_phi_is_checked():
    with pytest.raises(ValueError, match="bi-level mode: the target model's optimizer owns the personalizer"):
        tr, _, _, ex = _trainer_setup(PlusConfig(warmup_epochs=0), optimizer_owns_phi=True)
        tr.fit(ex, 1)
    with pytest.raises(ValueError, match="end_to_end mode: the target model's optimizer must own"):
        tr, _, _, ex = _trainer_setup(PlusConfig(mode="end_to_end", warmup_epochs=0))
        tr.fit(ex, 1)
    with pytest.raises(ValueError, match="mode='off' trains no personalizer"):
        PersonalizerHook(Personalizer(4), PersonalizedWeights(Personalizer(4)), PlusConfig(mode="off"))


def test_end_to_end_weights_collapse_towards_zero():
    """Ablation (C), Table 4: trained jointly on the weighted loss, the personalizer drives w to 0."""
    data, train = _tiny(n=200)
    res = personalize(data, train, "sasrec", plus=PlusConfig(mode="end_to_end", warmup_epochs=0), epochs=25,
                      patience=100, **SMALL)
    means = [r["weight_mean"] for r in res["history"]]
    steps = res["history"][-1]["epoch"] + 1
    assert steps * math.ceil(len(train) / 32) >= 150
    assert means[0] > 0.45 and means[-1] < 0.15, means


@pytest.mark.parametrize("model", ["sasrec", "gru4rec", "fmlp", "gnn", "cl4srec"])
def test_bilevel_training_runs_on_every_target_model(model, tmp_path):
    data, train = _tiny(n=60)
    tagged = concat(train, planted_data(n=20, seed=4), num_items=data.num_items, sources=["original", "patterns"])
    # (a length-bucketed batch of pinned patterns alone has a zero hypergradient: several steps)
    plus = PlusConfig(interval=2, warmup_epochs=0, pin=("patterns",), upper_lr=0.5, dev_fraction=0.2)
    res = personalize(data, tagged, model, plus=plus, epochs=2, patience=5, out_dir=tmp_path / model, **SMALL)
    assert res["upper_steps"] > 0 and res["upper_skipped"] == 0
    norms = [r["hypergrad_norm"] for r in res["history"]]
    assert np.all(np.isfinite(norms)) and max(norms) > 0
    with torch.random.fork_rng():
        torch.manual_seed(plus.seed)
        fresh = Personalizer(16, tau=10.0)
    assert not torch.equal(fresh.fc2.weight, res["personalizer"].fc2.weight), "phi never moved"
    w = res["weights"]["sampled"]
    lower = split_dev(tagged, plus)[0]
    assert w.shape == (lower.num_interactions,)
    first = lower.offsets[:-1][lower.lengths > 0]
    assert np.all(np.isnan(w[first]))  # the first item of a sequence is no target
    pinned = pinned_interactions(lower, ["patterns"])
    targets = ~np.isnan(w)
    assert np.all(w[pinned & targets] == 1) and np.all((w[~pinned & targets] > 0) & (w[~pinned & targets] < 1))
    assert res["dev_sequences"] == len(tagged) - len(lower) > 0


# ------------------------------------------------------------------ dev split, config, checkpoints
def test_heldout_dev_comes_from_the_original_training_sequences_only():
    data, train = _tiny(n=100)
    tagged = concat(train, planted_data(n=50, seed=2), num_items=data.num_items, sources=["original", "patterns"])
    plus = PlusConfig(dev_fraction=0.2, seed=3)
    lower, dev = split_dev(tagged, plus)
    assert len(dev) == 20 and len(lower) == len(tagged) - 20
    assert np.all(dev.meta["source"] == 0) and dev.meta["source_names"] == ["original", "patterns"]
    assert np.sum(lower.meta["source"] == 1) == 50
    # the dev rows are training rows (all but each user's last two items), moved out of the lower set
    all_rows = [tuple(s) for s in tagged.to_lists()]
    assert sorted(all_rows) == sorted([tuple(s) for s in lower.to_lists()] + [tuple(s) for s in dev.to_lists()])
    train_rows = {tuple(s) for s in train.to_lists()}
    assert all(tuple(s) in train_rows for s in dev.to_lists())
    # same seed, same split; train_batch and end_to_end hold nothing out
    assert split_dev(tagged, plus)[1].to_lists() == dev.to_lists()
    assert split_dev(tagged, PlusConfig(dev="train_batch"))[1] is None
    assert split_dev(tagged, PlusConfig(mode="end_to_end"))[1] is None


@pytest.mark.parametrize("field, value, message", [
    ("interval", 0, "interval must be >= 1, got 0"),
    ("K", -1, "K must be >= 0, got -1"),
    ("tau", 0.0, "tau must be a number > 0, got 0.0"),
    ("tau", -2.0, "tau must be a number > 0, got -2.0"),
    ("tau_min", 5.0, "tau = 10.0 is below tau_min = 5.0"),
    ("mode", "joint", "mode must be one of 'bilevel', 'end_to_end', 'off', got 'joint'"),
    ("dev", "valid", "dev must be one of 'heldout', 'train_batch', got 'valid'"),
    ("dev_fraction", 1.0, "dev_fraction must be in \\(0, 1\\), got 1.0"),
    ("alpha", 0, "alpha must be a number > 0, got 0"),
    ("upper_weight_decay", -1.0, "upper_weight_decay must be a number >= 0"),
    ("on_divergence", "ignore", "on_divergence must be one of"),
    ("interval", 2.5, "interval must be an int, got 2.5"),
])
def test_bad_plus_config_values_are_named(field, value, message):
    kwargs = {field: value}
    if field == "tau_min":
        kwargs["tau"] = 10.0
        kwargs["tau_min"] = 20.0
        message = "tau = 10.0 is below tau_min = 20.0"
    with pytest.raises((ValueError, TypeError), match=message):
        PlusConfig(**kwargs)


def test_empty_dev_set_is_an_error():
    data, train = _tiny(n=8)
    with pytest.raises(ValueError, match="the dev set is empty: dev_fraction = 0.01 of the 8 sequences"):
        split_dev(train, PlusConfig(dev_fraction=0.01))
    with pytest.raises(ValueError, match="the dev set holds no target"):
        tr, hook, p, ex = _trainer_setup(PlusConfig(warmup_epochs=0))
        hook.dev = Examples(SequenceDataset.from_lists([[1], [2]], num_items=40), 12)
        tr.fit(ex, 1)


def test_personalizer_checkpoint_is_tied_to_its_model_and_vocabulary(tmp_path):
    sas = build_model("sasrec", 30, embed_dim=8, max_len=6)
    p = Personalizer(8, tau=3.0, learn_tau=True)
    path = tmp_path / "personalizer.pt"
    save_personalizer(p, path, model=sas)
    back = load_personalizer(path, model=sas)
    assert all(torch.equal(a, b) for a, b in zip(p.state_dict().values(), back.state_dict().values()))
    assert back.learn_tau and back.tau.item() == 3.0
    with pytest.raises(ValueError, match="personalizer for model 'sasrec' with 30 items; this target model is "
                                         "'gru4rec' with 30 items"):
        load_personalizer(path, model=build_model("gru4rec", 30, embed_dim=8, max_len=6))
    with pytest.raises(ValueError, match="'sasrec' with 30 items; this target model is 'sasrec' with 31 items"):
        load_personalizer(path, model=build_model("sasrec", 31, embed_dim=8, max_len=6))
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a fastregen personalizer checkpoint"):
        load_personalizer(tmp_path / "other.pt", model=sas)
    with pytest.raises(ValueError, match="hidden states have width 4, the personalizer expects 8"):
        p(torch.randn(2, 4))


# ------------------------------------------------------------------ pipeline, resumability, DR4SR API
def test_personalize_run_folder_resumes_and_refuses_other_settings(tmp_path):
    data, train = _tiny(n=80)
    out = tmp_path / "run"
    plus = PlusConfig(interval=4, warmup_epochs=1)
    res = personalize(data, train, "sasrec", plus=plus, out_dir=out, epochs=2, **SMALL)
    for name in ("personalize.json", "personalizer.pt", "weights.npz", "plus.yaml", "model.pt", "result.json",
                 "test_ranks.npy", "metrics.jsonl"):
        assert (out / name).exists(), name
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert "upper_steps" in lines[1] and "weight_mean" in lines[1]
    again = personalize(data, train, "sasrec", plus=plus, out_dir=out, epochs=2, **{**SMALL, "num_threads": 2})
    assert again["resumed"] and again["test"] == res["test"]
    assert np.array_equal(again["test_ranks"], res["test_ranks"])
    np.testing.assert_array_equal(again["weights"]["sampled"], res["weights"]["sampled"])
    with pytest.raises(ValueError, match=r"plus_config\.interval: 4 in the checkpoint, 5 now"):
        personalize(data, train, "sasrec", plus=PlusConfig(interval=5, warmup_epochs=1), out_dir=out, epochs=2,
                    **SMALL)
    # a personalizer checkpoint starts another run of the same model and vocabulary, not of another model
    with pytest.raises(ValueError, match="personalizer for model 'sasrec' .* this target model is 'gru4rec'"):
        personalize(data, train, "gru4rec", plus=plus, init=out / "personalizer.pt", epochs=1, **SMALL)
    warm = personalize(data, train, "sasrec", plus=plus, init=out / "personalizer.pt", out_dir=tmp_path / "warm",
                       epochs=1, **SMALL)
    assert warm["upper_steps"] == 0  # one warm-up epoch: phi is the checkpoint's
    assert torch.equal(warm["personalizer"].fc1.weight, res["personalizer"].fc1.weight)
    torch.save(torch.load(out / "personalizer.pt", weights_only=True) | {"extra": {"x": 1}}, tmp_path / "p2.pt")
    with pytest.raises(ValueError, match="init_sha256"):
        personalize(data, train, "sasrec", plus=plus, init=tmp_path / "p2.pt", out_dir=tmp_path / "warm", epochs=1,
                    **SMALL)
    # a run interrupted after its training (no personalize.json) restores the finished training from
    # checkpoint.pt (phi included) instead of training again: the same result
    (out / "personalize.json").unlink()
    redo = personalize(data, train, "sasrec", plus=plus, out_dir=out, epochs=2, **SMALL)
    assert not redo["resumed"] and redo["test"] == res["test"]


def test_mode_off_is_plain_training_on_the_same_data():
    from fastregen.training import fit_and_evaluate

    data, train = _tiny(n=80)
    off = personalize(data, train, "sasrec", plus=PlusConfig(mode="off"), epochs=2, **SMALL)
    plain = fit_and_evaluate(data, "sasrec", 0, train_data=train, epochs=2, **SMALL)
    assert off["personalizer"] is None and off["weights"] is None
    assert off["test"] == plain["test"]


def test_training_sets_are_tagged_and_dr4sr_personalize_uses_them():
    data = planted_data(n=60)
    dr = DR4SR(RegenConfig(**TINY)).fit(data)
    sets = dr.training_sets()
    combined, names = sets["combined"], sets["combined"].meta["source_names"]
    assert names == ["original", "patterns", "regenerated"]
    counts = np.bincount(combined.meta["source"], minlength=3)
    assert counts.tolist() == [len(sets["original"]), len(sets["patterns"]),
                               int((sets["regenerated"].lengths > 0).sum())]
    assert sets["combined_authors"].meta["source_names"] == names
    assert np.sum(sets["combined_authors"].meta["source"] == 0) == 2 * len(sets["original"])
    res = personalize(data, combined, "sasrec", plus=PlusConfig(warmup_epochs=0, interval=5), epochs=1, **SMALL)
    assert res["upper_steps"] > 0 and res["train_sequences"] + res["dev_sequences"] == len(combined)


# ------------------------------------------------------------------ figure and CLI
def test_weight_panel_and_figure(tmp_path):
    offsets = np.array([0, 3, 5, 9, 10])
    w = np.array([np.nan, .2, .4, np.nan, 1, np.nan, .1, .3, .5, np.nan], np.float32)
    weights = {"offsets": offsets, "sampled": w, "noise_free": w, "model": np.asarray("sasrec")}
    mat, rows = weight_panel(weights, n=25, seed=0)
    # sequence 1 is pinned (all 1), sequence 3 has no target
    assert rows.tolist() == [0, 2] and mat.shape == (2, 3)
    np.testing.assert_allclose(mat[0], [.2, .4, np.nan], rtol=1e-6)
    np.testing.assert_allclose(mat[1], [.1, .3, .5], rtol=1e-6)
    with pytest.raises(ValueError, match="kind must be"):
        weight_panel(weights, kind="mean")
    tagged = {**weights, "source": np.array([0, 0, 1, 1]), "source_names": np.array(["original", "patterns"])}
    assert weight_panel(tagged, source="patterns")[1].tolist() == [2]
    assert weight_panel(tagged, min_length=4)[1].tolist() == [2]
    with pytest.raises(ValueError, match="source 'regenerated' is not in this weights file"):
        weight_panel(tagged, source="regenerated")

    for name in ("a", "b"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        np.savez(tmp_path / "runs" / name / "weights.npz", **{**weights, "model": np.asarray(name)})
    panels = plot_weights([tmp_path / "runs"], tmp_path / "fig.png")
    assert [p["model"] for p in panels] == ["a", "b"] and (tmp_path / "fig.png").stat().st_size > 1000
    assert panels[0]["variance"] == pytest.approx(np.var([.2, .4, .1, .3, .5]), rel=1e-5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no weights.npz"):
        plot_weights([tmp_path / "empty"], tmp_path / "x.png")


def test_personalize_and_plot_cli(tmp_path):
    from fastregen.cli import app

    data = planted_data(n=60)
    data_file = tmp_path / "planted.txt"
    data_file.write_text("".join(f"{u + 1} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(data.to_lists())))
    regen = tmp_path / "regen"
    DR4SR(RegenConfig(**TINY)).fit(data_file, out_dir=regen).regenerate()
    runner = CliRunner()
    run = tmp_path / "runs" / "sasrec"
    args = ["personalize", str(data_file), "--regen", str(regen), "--out", str(run), "--epochs", "2",
            "--plus", "warmup_epochs=0", "--plus", "interval=5", "--set", "embed_dim=16", "--set", "max_len=12",
            "--set", "batch_size=32", "--threads", "1"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "epoch   0" in res.output and "upper" in res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["training_set"] == "combined" and summary["upper_steps"] > 0
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "reused" in again.output

    res = runner.invoke(app, ["plot", "weights", str(tmp_path / "runs"), "--out", str(tmp_path / "fig.png")])
    assert res.exit_code == 0, res.output
    assert "sasrec" in res.output and "variance" in res.output and (tmp_path / "fig.png").exists()

    bad = runner.invoke(app, ["personalize", str(data_file), "--regen", str(tmp_path), "--out", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "error: " in bad.output and "not a finished `fastregen regenerate` folder" in bad.output
    bad = runner.invoke(app, args[:6] + ["--plus", "interval=0"])
    assert bad.exit_code == 2 and "error: interval must be >= 1, got 0" in bad.output
    bad = runner.invoke(app, args[:6] + ["--plus", "K=-1"])
    assert bad.exit_code == 2 and "error: K must be >= 0, got -1" in bad.output
    bad = runner.invoke(app, ["plot", "weights", str(regen), "--out", str(tmp_path / "f.png")])
    assert bad.exit_code == 2 and "error: no weights.npz" in bad.output


def test_personalize_passes_extra_hooks_after_the_personalizer():
    """A caller's hook sees every epoch, after the personalizer's (its record already holds the weights),
    and an observing hook leaves the run as it is."""
    from fastregen.training import Hook

    data, train = _tiny(n=80)
    plus = PlusConfig(interval=4, warmup_epochs=1)
    seen = []

    class Watch(Hook):
        def on_epoch_end(self, trainer, record):
            seen.append((record["epoch"], "weight_mean" in record))

    res = personalize(data, train, "sasrec", plus=plus, hooks=(Watch(),), epochs=3, **SMALL)
    assert seen == [(0, False), (1, True), (2, True)]
    plain = personalize(data, train, "sasrec", plus=plus, epochs=3, **SMALL)
    assert res["test"] == plain["test"] and res["upper_steps"] == plain["upper_steps"] > 0
