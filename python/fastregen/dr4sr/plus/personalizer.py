"""The DR4SR+ data personalizer g_phi: one weight in (0, 1) per training target (paper eq. 5, 8).

``z = g_phi(h_t)`` in R^2 with g_phi = Linear(d, d) - ReLU - Linear(d, 2)
(N(0, 0.02) weights, zero biases, as the authors' ``normal_initialization``),
``w = softmax((z + G) / tau)[0]`` with G two Gumbel draws. For two classes
this is ``sigmoid((z_0 - z_1 + L) / tau)`` with L = G_0 - G_1 a standard
logistic draw, which is what is computed (one draw per target instead of
two). ``h_t`` is the target model's hidden state at the position that
predicts the target, the ``hidden`` every target model returns.

* `Personalizer` -- the module (phi, and tau when it is learned).
* `PersonalizedWeights` -- the ``weight_fn`` of `fastregen.training.NextItemLoss`:
  weights per (row, column) of a batch, 0 at padding, 1 for pinned sources,
  phi detached in the lower level of the bi-level mode.
* `sequence_weights` -- the weights of every target of a dataset (for the
  Fig. 4 heatmap, ``weights.npz``).
* `save_personalizer` / `load_personalizer` -- checkpoints tied to a target
  model and vocabulary.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Personalizer",
    "PersonalizedWeights",
    "check_hidden_states",
    "pinned_interactions",
    "sequence_weights",
    "save_personalizer",
    "load_personalizer",
]

# Uniform draws are kept in [2^-24, 1 - 2^-24] so the logistic noise is finite
# (|L| <= 16.6) and w stays strictly inside (0, 1) for moderate logits.
_EPS = 2.0**-24


class Personalizer(nn.Module):
    """g_phi: hidden state (..., d) -> weight (...) in (0, 1).

    Parameters
    ----------
    embed_dim : int
        Width ``d`` of the target model's hidden states.
    tau : float, default 10.0
        Gumbel-softmax temperature (see `PlusConfig.tau`).
    tau_min : float, default 1.0
        Lower clip of tau.
    learn_tau : bool, default False
        tau is a parameter (in `upper_parameters`) instead of a buffer.

    Attributes
    ----------
    fc1 : nn.Linear, (d, d)
    fc2 : nn.Linear, (d, 2)
    """

    def __init__(self, embed_dim: int, *, tau: float = 10.0, tau_min: float = 1.0, learn_tau: bool = False) -> None:
        super().__init__()
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim!r}")
        if not float(tau_min) > 0:
            raise ValueError(f"tau_min must be > 0, got {tau_min!r}")
        if not float(tau) >= float(tau_min):
            raise ValueError(f"tau must be >= tau_min = {tau_min}, got {tau!r}")
        self.embed_dim, self.tau_min, self.learn_tau = embed_dim, float(tau_min), bool(learn_tau)
        self.fc1 = nn.Linear(embed_dim, embed_dim)
        self.fc2 = nn.Linear(embed_dim, 2)
        for layer in (self.fc1, self.fc2):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)
        t = torch.tensor(float(tau))
        if learn_tau:
            self.tau = nn.Parameter(t)
        else:
            self.register_buffer("tau", t)

    def temperature(self) -> torch.Tensor:
        """tau clipped at ``tau_min`` (the released code's ``torch.clip(self.tau, min=tau_min)``)."""
        return self.tau.clamp(min=self.tau_min)

    def logits(self, hidden: torch.Tensor, *, detach_params: bool = False) -> torch.Tensor:
        """z = g_phi(h), shape (..., 2); ``detach_params`` cuts phi out of the graph (h stays in it)."""
        w1, b1, w2, b2 = self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias
        if detach_params:
            w1, b1, w2, b2 = (t.detach() for t in (w1, b1, w2, b2))
        return F.linear(F.relu(F.linear(hidden, w1, b1)), w2, b2)

    def forward(self, hidden: torch.Tensor, *, noise: bool = True, detach_params: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Weights of hidden states (..., d): ``sigmoid((z_0 - z_1 + L) / tau)``, shape (...).

        Parameters
        ----------
        hidden : torch.Tensor, shape (..., embed_dim)
        noise : bool, default True
            Add the logistic (Gumbel difference) noise; False gives the
            noise-free weight ``sigmoid((z_0 - z_1) / tau)``.
        detach_params : bool, default False
            Compute with phi (and tau) detached.
        generator : torch.Generator, optional
            Source of the noise (default: torch's global generator).
        """
        if hidden.size(-1) != self.embed_dim:
            raise ValueError(f"hidden states have width {hidden.size(-1)}, the personalizer expects {self.embed_dim}")
        z = self.logits(hidden, detach_params=detach_params)
        gap = z[..., 0] - z[..., 1]
        if noise:
            u = torch.rand(gap.shape, generator=generator, device="cpu" if generator is not None else gap.device)
            gap = gap + torch.logit(u.to(gap.device, gap.dtype).clamp(_EPS, 1.0 - _EPS))
        tau = self.temperature()
        if detach_params:
            tau = tau.detach()
        return torch.sigmoid(gap / tau)

    def upper_parameters(self) -> list[nn.Parameter]:
        """phi: what the upper level (or the joint optimiser) updates."""
        return list(self.parameters())


def check_hidden_states(model, embed_dim: int | None = None) -> int:
    """Probe ``model`` with a tiny batch; return the width of its per-position hidden states.

    Raises ValueError naming the model when it does not return one state
    per position, shape (batch, length, d), as DR4SR+ needs.
    """
    device = next(model.parameters()).device
    probe = torch.ones(1, 2, dtype=torch.long, device=device)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(probe)
    finally:
        model.train(was)
    name = getattr(model, "name", type(model).__name__)
    if not isinstance(out, torch.Tensor) or out.dim() != 3 or tuple(out.shape[:2]) != (1, 2):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model {name!r} returns {shape} for a (1, 2) batch; DR4SR+ weighs each target by "
                         "the hidden state at its position and needs one per position, shape (batch, length, d)")
    if embed_dim is not None and out.size(-1) != embed_dim:
        raise ValueError(f"model {name!r} has hidden states of width {out.size(-1)}, the personalizer expects {embed_dim}")
    return int(out.size(-1))


class PersonalizedWeights:
    """``weight_fn`` of `fastregen.training.NextItemLoss`: the personalizer's weight of every target.

    Parameters
    ----------
    personalizer : Personalizer
    pinned : np.ndarray of bool, shape (n_interactions,), optional
        Interactions of the training data (``Batch.index``) whose target
        keeps weight 1 (rows of a pinned source).
    differentiable : bool, default False
        Let gradients reach phi. False in the lower level of the bi-level
        mode, where phi must move only by the hypergradient; True in the
        end-to-end mode. `live` switches it on for one block.
    detach_hidden : bool, default False
        Detach h before the personalizer (see `PlusConfig.detach_hidden`).

    Attributes
    ----------
    active : bool
        False returns weight 1 everywhere (the warm-up epochs).
    """

    def __init__(self, personalizer: Personalizer, pinned=None, *, differentiable: bool = False,
                 detach_hidden: bool = False) -> None:
        self.personalizer = personalizer
        self.pinned = None if pinned is None else torch.as_tensor(np.asarray(pinned, dtype=bool))
        self.differentiable, self.detach_hidden = bool(differentiable), bool(detach_hidden)
        self.active = True
        self._recording = True
        self.reset_stats()

    def reset_stats(self) -> None:
        """Zero the running sums behind `stats`."""
        self._n, self._s, self._s2 = 0, 0.0, 0.0

    def stats(self) -> dict:
        """Mean and variance of the weights given to unpinned targets since `reset_stats`."""
        if self._n == 0:
            return {}
        mean = self._s / self._n
        return {"weight_mean": mean, "weight_var": max(self._s2 / self._n - mean * mean, 0.0)}

    @contextlib.contextmanager
    def live(self):
        """Within the block, gradients reach phi and `stats` ignores the weights (the upper level's training loss)."""
        old, self.differentiable, self._recording = self.differentiable, True, False
        try:
            yield self
        finally:
            self.differentiable, self._recording = old, True

    def __call__(self, model, batch, hidden: torch.Tensor) -> torch.Tensor:
        targets = batch.targets
        if hidden.dim() != 3 or hidden.shape[:2] != targets.shape:
            raise ValueError(f"model {getattr(model, 'name', '?')!r} returned hidden states of shape "
                             f"{tuple(hidden.shape)} for targets of shape {tuple(targets.shape)}; DR4SR+ needs one "
                             "hidden state per position")
        valid = targets > 0
        if not self.active:
            return valid.to(hidden.dtype)
        h = hidden.detach() if self.detach_hidden else hidden
        w = self.personalizer(h, detach_params=not self.differentiable)
        if self.pinned is not None:
            index = batch.index
            if self.pinned.device != index.device:
                self.pinned = self.pinned.to(index.device)
            if index.numel() and int(index.max()) >= self.pinned.numel():
                raise ValueError(f"batch interaction index {int(index.max())} is beyond the {self.pinned.numel()} "
                                 "interactions the pinned mask was built for (another training set?)")
            pin = (index >= 0) & self.pinned[index.clamp_min(0)]
            free = valid & ~pin
            w = torch.where(pin, torch.ones_like(w), w)
        else:
            free = valid
        w = w * valid
        if self._recording:
            with torch.no_grad():
                wf = w[free].double()
                self._n += int(wf.numel())
                self._s += float(wf.sum())
                self._s2 += float((wf * wf).sum())
        return w


def pinned_interactions(data, sources) -> np.ndarray | None:
    """Per interaction of ``data``: True where its sequence's source is one of ``sources``.

    ``data.meta["source"]`` (int per sequence) indexes ``data.meta["source_names"]``.
    Returns None when ``sources`` is empty; raises ValueError naming an
    unknown source or an untagged dataset.
    """
    sources = tuple(sources)
    if not sources:
        return None
    names = list(data.meta.get("source_names", ()))
    tags = data.meta.get("source")
    if tags is None or not names:
        raise ValueError(f"pin={sources!r} needs a training set tagged with its sources "
                         "(meta['source'] and meta['source_names'], as DR4SR.training_sets() gives); this one is not")
    unknown = [s for s in sources if s not in names]
    if unknown:
        raise ValueError(f"pin names unknown source(s) {unknown}; the training set has {names}")
    seq = np.isin(np.asarray(tags), [names.index(s) for s in sources])
    return np.repeat(seq, data.lengths)


@torch.no_grad()
def sequence_weights(model, personalizer: Personalizer, examples, *, pinned=None, batch_size: int = 1024,
                     seed: int = 0, progress: bool = False) -> dict[str, np.ndarray]:
    """The personalizer's weight of every target of a dataset, per interaction.

    The model runs in eval mode (no dropout). Targets are addressed by their
    interaction index in ``examples.data.items`` (`fastregen.training.Batch.index`).

    Parameters
    ----------
    model : SequentialRecommender
    personalizer : Personalizer
    examples : fastregen.training.Examples
        The training examples (protocol "all" or "last").
    pinned : np.ndarray of bool, shape (n_interactions,), optional
        Targets that keep weight 1.
    batch_size : int, default 1024
    seed : int, default 0
        Seeds the Gumbel noise of ``sampled``.
    progress : bool, default False

    Returns
    -------
    dict
        ``sampled`` and ``noise_free`` : np.ndarray of float32, shape (n_interactions,)
        -- the weight with one logistic draw, and ``sigmoid((z_0 - z_1) / tau)``;
        NaN where the interaction is no target (the first item of a sequence).
    """
    from ..._progress import progress_bar

    n = int(examples.data.num_interactions)
    out = {"sampled": np.full(n, np.nan, np.float32), "noise_free": np.full(n, np.nan, np.float32)}
    gen = torch.Generator().manual_seed(int(seed))
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        order = examples.batch_order(batch_size, None, bucketing=True)
        for idx in progress_bar(order, enabled=progress, desc="weights", unit="batch"):
            batch = examples.batch(idx).to(device)
            hidden = model(batch.inputs, timestamps=batch.timestamps)
            sel = batch.targets > 0
            index = batch.index[sel].cpu().numpy()
            for key, noise in (("sampled", True), ("noise_free", False)):
                w = personalizer(hidden, noise=noise, generator=gen)[sel].float().cpu().numpy()
                if pinned is not None:
                    w = np.where(pinned[index], 1.0, w)
                out[key][index] = w
    finally:
        model.train(was)
    return out


def save_personalizer(personalizer: Personalizer, path, *, model, **extra) -> None:
    """Write a checkpoint of ``personalizer`` tied to its target ``model`` (name, vocabulary, width), atomically."""
    from ..._io import atomic_open

    payload = {
        "kind": "fastregen.dr4sr.plus.Personalizer",
        "model": getattr(model, "name", ""),
        "num_items": int(model.num_items),
        "embed_dim": personalizer.embed_dim,
        "tau_min": personalizer.tau_min,
        "learn_tau": personalizer.learn_tau,
        "state_dict": {k: v.detach().cpu() for k, v in personalizer.state_dict().items()},
        "extra": extra,
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def load_personalizer(path, *, model, map_location="cpu") -> Personalizer:
    """Rebuild a personalizer saved by `save_personalizer` for the target ``model``.

    Raises ValueError naming the mismatch when the checkpoint was trained
    for another target model, vocabulary or hidden width.
    """
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("kind") != "fastregen.dr4sr.plus.Personalizer":
        raise ValueError(f"{path} is not a fastregen personalizer checkpoint")
    name, n_items = getattr(model, "name", ""), int(model.num_items)
    if payload["model"] != name or payload["num_items"] != n_items:
        raise ValueError(f"{path} is a personalizer for model {payload['model']!r} with {payload['num_items']} items; "
                         f"this target model is {name!r} with {n_items} items")
    width = check_hidden_states(model)
    if payload["embed_dim"] != width:
        raise ValueError(f"{path} is a personalizer for hidden states of width {payload['embed_dim']}; "
                         f"model {name!r} has width {width}")
    tau = max(float(payload["state_dict"]["tau"]), payload["tau_min"])  # a learned tau may sit below its clip
    p = Personalizer(payload["embed_dim"], tau=tau, tau_min=payload["tau_min"], learn_tau=payload["learn_tau"])
    p.load_state_dict(payload["state_dict"])
    return p
