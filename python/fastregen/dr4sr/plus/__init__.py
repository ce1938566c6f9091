"""DR4SR+: the data personalizer and its bi-level training (Yin et al., KDD 2024, §4.3).

>>> from fastregen import DR4SR                                             # doctest: +SKIP
>>> from fastregen.dr4sr.plus import personalize                         # doctest: +SKIP
>>> dr = DR4SR(epochs=10).fit("beauty.txt")                                # doctest: +SKIP
>>> res = personalize(dr.data, dr.regenerate(), model="sasrec")           # doctest: +SKIP

* `PlusConfig` -- every option (mode, interval, K, alpha, upper optimiser,
  warm-up, tau, dev set, pinned sources).
* `Personalizer` / `PersonalizedWeights` -- g_phi and the per-target
  weights it gives the Trainer's `NextItemLoss`.
* `neumann_hypergradient` -- implicit differentiation with a truncated
  Neumann series of Hessian-vector products; `PersonalizerHook` -- the
  upper level as a `fastregen.training.Trainer` hook.
* `personalize` -- a target model trained with the personalizer, end to
  end, resumable in a run folder.
* `plot_weights` -- Fig. 4, the heatmap of the weights (needs matplotlib).
"""

from .bilevel import (
    Hypergradient,
    NeumannDivergenceError,
    NeumannDivergenceWarning,
    PersonalizerHook,
    double_backward_safe,
    neumann_hypergradient,
)
from .config import DEVS, DIVERGENCE, MODES, PlusConfig
from .figure import plot_weights
from .personalizer import (
    PersonalizedWeights,
    Personalizer,
    check_hidden_states,
    load_personalizer,
    pinned_interactions,
    save_personalizer,
    sequence_weights,
)
from .pipeline import load_training_set, load_weights, personalize, split_dev

__all__ = [
    "PlusConfig",
    "MODES",
    "DEVS",
    "DIVERGENCE",
    "Personalizer",
    "PersonalizedWeights",
    "check_hidden_states",
    "pinned_interactions",
    "sequence_weights",
    "save_personalizer",
    "load_personalizer",
    "Hypergradient",
    "neumann_hypergradient",
    "NeumannDivergenceWarning",
    "NeumannDivergenceError",
    "PersonalizerHook",
    "double_backward_safe",
    "personalize",
    "split_dev",
    "load_weights",
    "load_training_set",
    "plot_weights",
]
