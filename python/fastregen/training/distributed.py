"""Several processes on torch.distributed: data-parallel training, sharded decoding, rank-0 outputs.

``torchrun --nproc-per-node N -m fastregen train|regenerate ...`` starts N
copies of the command; each joins the process group torchrun describes
(`init_from_env`: gloo on CPU, nccl on CUDA) and then:

* `fastregen.training.Trainer` trains data-parallel. Every rank draws the
  same epoch order (a generator seeded by ``seed``) of global batches of
  ``N x batch_size`` examples and takes its contiguous share of each
  (`shard`); after the backward pass the gradients are averaged over the
  ranks (`sync_gradients`: one all-reduce of the dense gradients; the
  item tables that `fastregen.training.LazyAdam` updates row by row send
  only the rows some rank looked up) before every rank takes the same
  optimizer step. The loss normaliser is global
  (total targets / global batches / N per rank), so the averaged gradient
  is the gradient of the global batch's loss and every target keeps the
  same weight, as in one process with the N-times larger batch. Terms that
  are already batch means (CL4SRec's contrastive loss, the regenerator's
  entropy and balance terms) become the mean of the per-rank means.
  Negatives, augmentations and dropout draw from per-rank streams
  (`rank_seed`).
* Evaluation, early stopping, checkpoints and every output file are rank
  0's: it decides ``stop`` and broadcasts it; at the end of `Trainer.fit`
  its weights (the best ones, after early stopping) are broadcast to all.
* `fastregen.generator.hybrid_inference` decodes a share of the sequences on
  each rank (whole length-sorted batches, dealt round-robin, so every
  sequence is decoded in the same batch as in one process); rank 0
  gathers the patterns, deduplicates them and writes; the result is the
  same as one process's.

Why not ``torch.nn.parallel.DistributedDataParallel``: its gradient hooks
need every use of the parameters inside the wrapper's ``forward``, and the
objectives here call other methods (``Regenerator.loss``, the target
models' ``item_weight``). Averaging the gradients after ``backward`` is the
same update (it gives up DDP's overlap of communication with the backward
pass).

If a rank dies, torchrun stops the others; nothing half-written is left
(every output is written atomically by rank 0), a stage that did not finish
is not marked done, and the rerun resumes (`fastregen.dr4sr.DR4SR`).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch

__all__ = ["World", "current", "init_from_env", "session", "is_main", "barrier", "broadcast_object",
           "gather_object", "sync_gradients", "broadcast_module", "all_reduce_mean", "shard", "rank_seed",
           "main_first", "requested_world_size"]

#: Seconds a collective waits for the other ranks (rank 0 may evaluate a
#: whole catalogue while the others wait); FASTREGEN_DIST_TIMEOUT overrides.
DEFAULT_TIMEOUT_S = 4 * 3600


@dataclass(frozen=True)
class World:
    """This process's place in a process group of more than one rank."""

    rank: int
    size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _dist():
    import torch.distributed as dist

    return dist


def current() -> World | None:
    """The process group this process belongs to; None when it runs alone (no group, or a group of 1)."""
    dist = _dist()
    if not dist.is_available() or not dist.is_initialized():
        return None
    size = dist.get_world_size()
    return None if size == 1 else World(dist.get_rank(), size)


def requested_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when not launched by torchrun)."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {raw!r}") from None
    if size < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {size}")
    return size


def init_from_env(device: str | torch.device = "cpu") -> World | None:
    """Join the process group that torchrun's environment describes; None without one.

    Uses ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``
    (``LOCAL_RANK`` picks the GPU). The backend is nccl for a CUDA
    ``device``, gloo otherwise.
    """
    if requested_world_size() <= 1:
        return None
    dist = _dist()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if dist.is_initialized():
        return current()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = datetime.timedelta(seconds=float(os.environ.get("FASTREGEN_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    return current()


@contextlib.contextmanager
def session(device: str | torch.device = "cpu"):
    """`init_from_env` for the duration of a block; the group is destroyed at its end (if it made one)."""
    dist = _dist()
    owned = requested_world_size() > 1 and dist.is_available() and not dist.is_initialized()
    world = init_from_env(device)
    try:
        yield world
    finally:
        if owned and dist.is_initialized():
            # Free the block's cyclic garbage now: a Trainer cycle can hold gloo work objects, and left to
            # the interpreter's final collection, gloo's threads release their tensors while Python shuts
            # down and abort the process ("terminate called without an active exception") after its work
            # is done
            gc.collect()
            dist.destroy_process_group()


def is_main() -> bool:
    """True on rank 0 and in a process that runs alone."""
    world = current()
    return world is None or world.is_main


def _device() -> torch.device:
    """Where collective tensors live: the current GPU under nccl, the CPU under gloo."""
    dist = _dist()
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (no-op alone)."""
    if current() is not None:
        _dist().barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable; the object itself alone)."""
    if current() is None:
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=src, device=_device())
    return box[0]


def gather_object(obj: Any) -> list | None:
    """Every rank's ``obj`` on rank 0 (a list in rank order), None elsewhere; ``[obj]`` alone."""
    world = current()
    if world is None:
        return [obj]
    out = [None] * world.size if world.is_main else None
    _dist().gather_object(obj, out, dst=0)
    return out


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over the ranks of a float tensor (a copy; ``values`` alone)."""
    world = current()
    if world is None:
        return values.clone()
    t = values.detach().to(_device(), torch.float64).clone()
    _dist().all_reduce(t)
    return (t / world.size).to(values.device, values.dtype)


def sync_gradients(parameters: Iterable[torch.nn.Parameter], world: World,
                   loss: torch.Tensor | None = None, sparse: Iterable[torch.nn.Parameter] = ()) -> float:
    """Average the gradients of ``parameters`` over the ranks in place (one all-reduce of the dense ones).

    A parameter without a gradient on this rank (unused by its share of the
    batch, or an empty share) counts as a zero gradient, and gets the
    average, so that every rank's optimizer steps the same parameters.
    ``loss`` (this rank's normalised loss) rides along; returns its mean
    over the ranks.

    Parameters in ``sparse`` (the tables an optimizer updates row by row,
    `fastregen.training.LazyAdam.lazy_params`) keep row-sparse gradients:
    the ranks agree on the union of the rows they touched (two small
    all_gathers: row counts, then row ids), each adds its (U, ...) block of
    those rows to the one all-reduce, and every rank gets the same sparse
    gradient, the union's rows averaged as the dense gradients are. So the
    tables and their optimizer states stay identical on every rank, and
    the update is the one process's on the global batch (whose lookups are
    the union). A dense gradient of such a table on any rank (a full
    softmax scores every row) sends that table dense on every rank.
    """
    dist = _dist()
    lazy_ids = {id(p) for p in sparse}
    params = [p for p in parameters if p.requires_grad]
    lazy = [p for p in params if id(p) in lazy_ids]
    plan = _sparse_plan(lazy, world) if lazy else _SparsePlan([], [], [], [])
    dense = [p for p in params if id(p) not in lazy_ids] + plan.dense
    dev = _device()
    grads = [_dense_grad(p) for p in dense]
    extra = torch.zeros(1, device=dev) if loss is None else loss.detach().reshape(1).to(dev, torch.float32)
    parts = [g.to(dev, torch.float32) for g in grads] + [b.to(dev, torch.float32) for b in plan.blocks] + [extra]
    flat = torch._utils._flatten_dense_tensors(parts)
    dist.all_reduce(flat)
    flat /= world.size
    synced = torch._utils._unflatten_dense_tensors(flat, parts)
    for p, g in zip(dense, synced[:len(dense)]):
        g = g.to(p.device, p.dtype)
        if p.grad is None or p.grad.is_sparse:
            p.grad = g
        else:
            p.grad.copy_(g)
    for p, rows, block in zip(plan.params, plan.rows, synced[len(dense):-1]):
        p.grad = torch.sparse_coo_tensor(rows.to(p.device)[None], block.to(p.device, p.dtype), p.shape,
                                         is_coalesced=True, check_invariants=False)
    return float(synced[-1])


def _dense_grad(p: torch.nn.Parameter) -> torch.Tensor:
    """``p``'s gradient as a dense tensor (zeros for none)."""
    if p.grad is None:
        return torch.zeros_like(p)
    return p.grad.to_dense() if p.grad.is_sparse else p.grad


@dataclass
class _SparsePlan:
    """How `sync_gradients` sends the ``sparse`` parameters: ``params`` (row-sparse on every rank) with the
    ``rows`` some rank touched (sorted, the same on every rank) and this rank's ``blocks`` of those rows
    (U, ...), zero where this rank has none; ``dense``: those that some rank holds a dense gradient of."""

    params: list
    rows: list
    blocks: list
    dense: list


def _local_rows(p: torch.nn.Parameter) -> tuple[torch.Tensor, torch.Tensor] | None:
    """This rank's (rows, values) of ``p``'s row-sparse gradient (coalesced); None for a dense gradient."""
    g = p.grad
    if g is None:
        return torch.zeros(0, dtype=torch.long, device=p.device), p.new_zeros((0, *p.shape[1:]))
    if not g.is_sparse:
        return None
    if g.sparse_dim() != 1:  # sparse over more than the rows: no row structure to exploit
        return None
    g = g.coalesce()
    return g.indices()[0], g.values()


def _sparse_plan(params: list, world: World) -> _SparsePlan:
    """Agree with the other ranks on the rows of each row-sparse gradient (two all_gathers).

    First every rank's row count per parameter (-1: a dense gradient, which
    sends that parameter dense on every rank), then every rank's row ids,
    padded to the largest rank's total (gloo's all_gather takes equal
    sizes). The exchange is of row ids, a few per looked-up item, never of
    a (V,) mask: at 700k items a step touches a few percent of the rows.
    """
    dist = _dist()
    dev = _device()
    local = [_local_rows(p) for p in params]
    counts = torch.tensor([-1 if x is None else len(x[0]) for x in local], dtype=torch.long, device=dev)
    all_counts = [torch.empty_like(counts) for _ in range(world.size)]
    dist.all_gather(all_counts, counts)
    all_counts = torch.stack(all_counts).cpu()  # (ranks, params)
    as_dense = (all_counts < 0).any(0).tolist()
    plan = _SparsePlan([], [], [], [p for p, d in zip(params, as_dense) if d])
    keep = [i for i, d in enumerate(as_dense) if not d]
    if not keep:
        return plan
    sizes = all_counts[:, keep].sum(1)  # row ids each rank sends
    width = int(sizes.max())
    mine = torch.cat([local[i][0].to(dev) for i in keep] + [torch.zeros(0, dtype=torch.long, device=dev)])
    send = torch.cat([mine, mine.new_zeros(width - len(mine))])
    got = [torch.empty_like(send) for _ in range(world.size)]
    dist.all_gather(got, send)
    got = [g[:int(n)].cpu() for g, n in zip(got, sizes)]
    offsets = torch.zeros((world.size, len(keep) + 1), dtype=torch.long)
    offsets[:, 1:] = torch.cumsum(all_counts[:, keep], 1)
    for j, i in enumerate(keep):
        p = params[i]
        union = torch.unique(torch.cat([g[offsets[r, j]:offsets[r, j + 1]] for r, g in enumerate(got)]))
        rows, values = local[i]
        block = values.new_zeros((len(union), *p.shape[1:]))
        block[torch.searchsorted(union.to(rows.device), rows)] = values
        plan.params.append(p)
        plan.rows.append(union)
        plan.blocks.append(block)
    return plan


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into ``module`` on every rank (no-op alone)."""
    if current() is None:
        return
    dist = _dist()
    dev = _device()
    tensors = [t for t in list(module.parameters()) + list(module.buffers())]
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    with torch.no_grad():
        for group in by_dtype.values():
            flat = torch._utils._flatten_dense_tensors([t.detach().to(dev) for t in group])
            dist.broadcast(flat, src=src)
            for t, v in zip(group, torch._utils._unflatten_dense_tensors(flat, group)):
                t.copy_(v.to(t.device))


def shard(batch: np.ndarray, world: World | None) -> np.ndarray:
    """This rank's contiguous share of a global batch (``np.array_split``; may be empty)."""
    if world is None:
        return batch
    return np.array_split(np.asarray(batch), world.size)[world.rank]


def rank_seed(seed: int, rank: int) -> int:
    """A seed for rank ``rank``'s own random stream, derived from the run's ``seed`` (64-bit)."""
    return int(np.random.SeedSequence([int(seed) % 2**63, int(rank)]).generate_state(1, np.uint64)[0])


def main_first(compute: Callable[[], Any], load: Callable[[], Any]) -> Any:
    """Rank 0 runs ``compute`` (which writes its artifact); the others wait, then ``load`` it. Alone: ``compute()``.

    An exception on rank 0 is raised there and, as a RuntimeError naming
    it, on every other rank (no rank is left waiting).
    """
    world = current()
    if world is None:
        return compute()
    result, error = None, None
    if world.is_main:
        try:
            result = compute()
        except Exception as exc:  # noqa: BLE001 (re-raised below, after telling the other ranks)
            error = exc
    message = broadcast_object(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if message is not None:
        raise RuntimeError(f"rank 0 failed: {message}")
    return result if world.is_main else load()
