"""Worker of tests/test_resume.py: one small training run into a run folder, optionally SIGKILLed.

    python tests/_resume_worker.py KIND OUT RESULT [KILL]

KIND: ``sasrec`` / ``gru4rec`` (`fit_and_evaluate`), ``regen`` (the DR4SR
pipeline up to the pre-trained regenerator), ``plus`` (DR4SR+ `personalize`,
bi-level with upper steps); ``sasrec_sampled`` / ``regen_sampled``: the same
with ``train_softmax="sampled"`` (negatives drawn every step; the regenerator
also with ``item_updates="lazy"``, `fastregen.training.LazyAdam`); ``sasrec_lazy``:
SASRec with ``item_updates="lazy"``. KILL: ``step:N`` kills this process (SIGKILL,
no cleanup) right after optimizer step N; ``log:E`` right after epoch E's
record is logged, before its checkpoint is written. Without KILL the run
goes to its end and RESULT (a torch file) gets the final weights, metrics
and what the Trainer found in the checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys

import torch


def _kill_switch(kill: str | None):
    """Patch the Trainer so that this process dies where ``kill`` says; record what `fit` resumed."""
    from fastregen.training.trainer import Trainer

    seen = {}
    step, fit = Trainer.step, Trainer.fit
    what, _, at = (kill or "none:0").partition(":")
    at = int(at)

    def killing_step(self, batch):
        value = step(self, batch)
        if what == "step" and self.step_count == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return value

    def recording_fit(self, data, epochs):
        if what == "log":
            log = self.log

            def killing_log(record):
                if log is not None:
                    log(record)
                if record["epoch"] == at:
                    os.kill(os.getpid(), signal.SIGKILL)

            self.log = killing_log
        history = fit(self, data, epochs)
        seen.update(resumed_epochs=self.resumed_epochs, finished=self.finished, steps=self.step_count,
                    epochs=len(history))
        return history

    Trainer.step, Trainer.fit = killing_step, recording_fit
    return seen


def _data():
    from fastregen.data import synthetic

    return synthetic("demo", n_users=150, n_items=80, avg_len=8, n_patterns=10, pattern_len=4, seed=3)


SMALL = {"progress": False, "embed_dim": 16, "max_len": 12, "batch_size": 32, "num_threads": 1}


def main(kind: str, out: str, result: str, kill: str | None = None) -> None:
    torch.set_num_threads(1)
    seen = _kill_switch(kill)
    data = _data()
    res: dict = {}
    sampled, lazy = kind.endswith("_sampled"), kind.endswith("_lazy")
    kind = kind.removesuffix("_sampled").removesuffix("_lazy")
    if kind in ("sasrec", "gru4rec"):
        from fastregen.training import fit_and_evaluate

        extra = dict(loss="softmax", train_softmax="sampled", num_negatives=20) if sampled else {}
        if lazy:
            extra["item_updates"] = "lazy"
        r = fit_and_evaluate(data, model=kind, seed=1, out_dir=out, epochs=4, **SMALL, **extra)
        res.update(state=r["model"].state_dict(), valid=r["valid"], test=r["test"], best_epoch=r["best_epoch"])
    elif kind == "regen":
        from fastregen.dr4sr import DR4SR, RegenConfig

        cfg = RegenConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=4,
                          batch_size=32, max_len=12, max_pattern_len=5, progress=False, dropout=0.2,
                          diversity="gumbel", tau_decay=0.9, valid_fraction=0.1, min_support=3,
                          **(dict(train_softmax="sampled", num_negatives=20, item_updates="lazy") if sampled else {}))
        dr = DR4SR(cfg).fit(data, out_dir=out)
        res.update(state=dr.regenerator.state_dict(), tau=dr.regenerator.tau,
                   history=[{k: v for k, v in h.items() if k != "seconds"} for h in dr.history])
    elif kind == "plus":
        from fastregen.data import leave_one_out
        from fastregen.dr4sr.plus import PlusConfig, personalize

        plus = PlusConfig(interval=3, warmup_epochs=1)
        r = personalize(data, leave_one_out(data).train, "sasrec", seed=1, plus=plus, out_dir=out, epochs=3,
                        **SMALL)
        res.update(state=r["model"].state_dict(), phi=r["personalizer"].state_dict(), valid=r["valid"],
                   test=r["test"], upper_steps=r["upper_steps"], sampled=torch.from_numpy(r["weights"]["sampled"]))
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    res["trainer"] = dict(seen)
    torch.save(res, result)


if __name__ == "__main__":
    main(*sys.argv[1:])
