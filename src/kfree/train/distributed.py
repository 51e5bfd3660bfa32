"""Data-parallel training across processes started by ``torchrun`` (DistributedDataParallel).

``torchrun --nproc-per-node 2 -m kfree train data.npz --out model.kfree`` trains one model with
two processes; nothing else has to be set. :func:`torchrun_env` reads the variables ``torchrun``
exports (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``),
:func:`session` starts the process group around :meth:`~kfree.learner.ClusterLearner.fit` and
(as the decorator :func:`in_session`) :func:`~kfree.train.trainer.train_embedding`, with gloo
for a CPU model and nccl for a CUDA one; the group stays open for later calls and ends with the
process (torch cannot start a default group again in a process that destroyed one). A group the
caller started already is used as it is.

Why the batch is gathered
-------------------------
A metric-learning loss compares every pair (or triplet) of a P×K batch, so the batch cannot be
cut into per-process halves the way a classification batch can: each half would miss the pairs
across halves, see about half the identities, and give another loss and another gradient. So
every process draws the *same* batch from the same seeded sampler, embeds only its own slice of
the rows (the network's forward and backward, the part that costs), and the slices are gathered
with gradient into the whole batch on every process, where the loss is computed exactly as one
process computes it (:class:`DataParallel`).

Why the gradients come out right
--------------------------------
Every process computes the same loss ``L`` on the whole batch. The gather's backward sums what
every process's copy of ``L`` sends back to a slice (as a reduce-scatter does), so a slice
receives ``W · ∂L/∂slice`` for ``W`` processes; DDP then *averages* the parameter gradients over
the ``W`` processes, so each parameter gets ``Σ_slices ∂L/∂θ = ∂L/∂θ``: the gradient of one process
on the whole batch, hence the same Adam update. The loss's own parameters (BCL's radius ``b``,
softmax class weights) are held by the same DDP module as the head: every process computes their
full-batch gradient itself, and DDP averages those identical copies (a no-op in exact arithmetic)
so that rounding can never let them drift apart; they start from rank 0's values.

Only rank 0 validates, writes checkpoints and calls the progress hook. Its validation scores are
broadcast, and every process runs the same book-keeping on them, so all of them decide to stop
early at the same step and keep the same best step; the kept weights are broadcast from rank 0 at
the end so every process returns the identical model. An error on rank 0 inside such a rank-0-only
part is sent to the other processes, which raise it too instead of waiting for a message that
never comes.

What is not identical to one process: dropout (each process draws the masks of its own rows: the
same distribution, other masks) and float rounding. The processes multiply their rows in other
blocks than one process multiplies the whole batch, so results agree to rounding at first; as
with any change of summation order, training can amplify that over many steps. With two processes
the run is the *exact* run of one process that embeds each batch in the same two row slices (the
scalings by 2 above are exact in floating point); tests/train/test_distributed.py checks both.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import itertools
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from ..exceptions import ConfigError, first_line
from ..utils.signals import stoppable

log = logging.getLogger(__name__)

#: what ``torchrun`` exports to every process it starts (all of them, or none, must be set)
TORCHRUN_VARS: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

F = TypeVar("F", bound=Callable[..., Any])


class DistributedSetupError(ConfigError):
    """The multi-process environment is incomplete or inconsistent, or its backend is missing."""


class DistributedRankError(RuntimeError):
    """Rank 0 failed in a part only it runs (validation, checkpoint loading); the message is its error."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes (1 process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """More than one process trains the model."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, saves and prints."""
        return self.rank == 0


def torchrun_env(environ: Mapping[str, str] | None = None) -> DistContext:
    """The process's place as ``torchrun`` set it in the environment; one process when unset.

    Raises :class:`DistributedSetupError` when only some of :data:`TORCHRUN_VARS` are set (for
    example ``RANK`` exported by hand without ``MASTER_ADDR``) or when they are not consistent:
    starting with half an environment would either hang waiting for peers or train alone while
    the user believes otherwise.
    """
    env = os.environ if environ is None else environ
    present = [v for v in TORCHRUN_VARS if env.get(v, "").strip()]
    if not present:
        return DistContext()
    missing = [v for v in TORCHRUN_VARS if v not in present]
    if missing:
        shown = ", ".join(f"{v}={env[v]}" for v in present)
        raise DistributedSetupError(
            f"half a torchrun environment: {shown} set but {', '.join(missing)} not; start with "
            "`torchrun --nproc-per-node N -m kfree train ...`, or unset "
            f"{', '.join(present)} to train in one process"
        )
    values: dict[str, int] = {}
    for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        try:
            values[v] = int(env[v])
        except ValueError:
            raise DistributedSetupError(f"{v}={env[v]!r} must be an integer (as torchrun sets it)") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise DistributedSetupError(
            f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}: need WORLD_SIZE >= 1, "
            "0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0"
        )
    return DistContext(rank=rank, world_size=world, local_rank=local)


def current() -> DistContext:
    """The running process group's view of this process (one process when none is running)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    local = os.environ.get("LOCAL_RANK", "").strip()
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(local) if local.isdigit() else 0, backend=str(dist.get_backend()))


def _backend(device: torch.device, ctx: DistContext) -> str:
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributedSetupError(
            f"WORLD_SIZE={ctx.world_size} asks for several processes, but this torch build has no "
            "torch.distributed; install a torch with it, or run one process"
        )
    if device.type == "cuda":
        if not (torch.cuda.is_available() and dist.is_nccl_available()):
            raise DistributedSetupError("the model is on CUDA but the nccl backend is not available")
        if ctx.local_rank >= torch.cuda.device_count():
            raise DistributedSetupError(
                f"LOCAL_RANK={ctx.local_rank} but only {torch.cuda.device_count()} CUDA devices; "
                "start at most that many processes per node"
            )
        return "nccl"
    if not dist.is_gloo_available():
        raise DistributedSetupError("the gloo backend (multi-process training on CPU) is not in this torch build")
    return "gloo"


@contextlib.contextmanager
def session(device: torch.device | str = "cpu") -> Iterator[DistContext]:
    """Run the enclosed code in the ``torchrun`` process group, if there is one.

    The first session of a process starts the group from the environment (backend chosen for
    ``device``); it stays open for the later sessions of the process and is destroyed when the
    process exits. Why not at the end of each session: a default group started again in a process
    that destroyed one hangs in torch (its store-based barrier finds the first group's keys;
    pytorch/pytorch#55967, #114585), so a script that fits two models under ``torchrun`` would
    hang on the second. A group the caller started is used as it is; without a ``torchrun``
    environment this is one process.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        yield current()
        return
    ctx = torchrun_env()
    if not ctx.enabled:
        yield ctx
        return
    device = torch.device(device)
    backend = _backend(device, ctx)
    if backend == "nccl":
        torch.cuda.set_device(ctx.local_rank)
    try:
        with stoppable():  # (it waits up to 30 minutes for a peer that never comes: kill ends it at once)
            dist.init_process_group(backend=backend, init_method="env://")
    except (RuntimeError, ValueError) as e:
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        raise DistributedSetupError(
            f"could not join the {backend} process group at {where} as rank {ctx.rank} of "
            f"{ctx.world_size}: {first_line(e)}"
        ) from None
    atexit.register(_end_group)
    log.info("process %d of %d (%s)", ctx.rank, ctx.world_size, backend)
    yield current()
    dist.barrier()  # leave together


def _end_group() -> None:
    """At exit: destroy the group :func:`session` started (if the caller has not), once DDP
    wrappers no longer used are gone (a gloo group torn down under a live reducer can abort the
    process at exit)."""
    import torch.distributed as dist

    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def in_session(fn: F) -> F:
    """Decorate a training entry point so it runs inside :func:`session`.

    The backend follows the device of the first ``nn.Module`` argument (CPU when there is none).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        device = torch.device("cpu")
        for a in itertools.chain(args, kwargs.values()):
            if isinstance(a, nn.Module):
                p = next(itertools.chain(a.parameters(), a.buffers()), None)
                device = p.device if p is not None else device
                break
        with session(device):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def row_counts(n_rows: int, world_size: int) -> list[int]:
    """Rows of an ``n_rows`` batch each rank embeds: contiguous slices, the first ranks one more."""
    base, extra = divmod(n_rows, world_size)
    return [base + (r < extra) for r in range(world_size)]


class _GatherRows(torch.autograd.Function):
    """All ranks' row slices, concatenated in rank order, with gradient back to this rank's slice.

    Written out (rather than ``torch.distributed.nn.functional.all_gather``, deprecated in torch
    2.x, whose gloo backward emulates a reduce-scatter with one scatter per rank) so the slices
    may differ in length by a row (padded for the collective) and the backward is one all-reduce.
    """

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, counts: tuple[int, ...], rank: int) -> torch.Tensor:
        import torch.distributed as dist

        ctx.counts, ctx.rank = counts, rank
        width = max(counts)
        padded = local.new_zeros((width, *local.shape[1:]))  # (max rows, d): equal sizes for gloo
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
        return torch.cat([p[:n] for p, n in zip(parts, counts)])  # (sum(counts), d)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        import torch.distributed as dist

        grad = grad.contiguous().clone()  # (sum(counts), d); reduced in place below
        dist.all_reduce(grad)  # sum over ranks: every rank's copy of the loss sends gradient here
        start = sum(ctx.counts[: ctx.rank])
        return grad[start: start + ctx.counts[ctx.rank]], None, None


class _HeadAndLoss(nn.Module):
    """The head and the loss as one module, so DDP holds (and averages the gradients of) both.

    Its forward is the head's; the loss's parameters get their gradients later in the same
    backward (the loss is computed on the gathered batch), which DDP accepts: it only needs every
    parameter it holds to receive one gradient per backward.
    """

    def __init__(self, model: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _SliceAndGather(nn.Module):
    """``forward(rows)`` → the embeddings of all the rows, shape (len(rows), d), computed by
    embedding only this rank's contiguous slice (through DDP) and gathering the others'."""

    def __init__(self, ddp: nn.Module, ctx: DistContext, device: torch.device) -> None:
        super().__init__()
        self.ddp = ddp
        self.ctx = ctx
        self.device = device

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        n, world, rank = int(rows.shape[0]), self.ctx.world_size, self.ctx.rank
        if n < world:
            raise ConfigError(
                f"a batch of {n} rows cannot feed {world} processes (each embeds at least one row); "
                "raise p or k (or triplets_per_batch), or start fewer processes"
            )
        counts = row_counts(n, world)
        start = sum(counts[:rank])
        local = self.ddp(rows[start: start + counts[rank]].to(self.device))  # (counts[rank], d)
        return _GatherRows.apply(local, tuple(counts), rank)  # (n, d)


class DataParallel:
    """The training loop's view of the processes: one process, or ``W`` of them with DDP.

    ``net`` is what the loop embeds batches with. With one process it is ``model`` itself and
    every other method does nothing (or calls straight through), so single-process training is
    unchanged. With several, ``net`` embeds this rank's slice of the rows through
    ``DistributedDataParallel`` over the head *and* the loss (so the loss's own parameters start
    from rank 0's and have their gradients averaged with the head's), and returns the whole
    batch's embeddings gathered with gradient; see the module docstring for why that makes the
    update one process's.
    """

    def __init__(self, model: nn.Module, loss: nn.Module, ctx: DistContext | None = None) -> None:
        self.ctx = current() if ctx is None else ctx
        self.net: nn.Module = model
        self.device = torch.device("cpu")
        if not self.ctx.enabled:
            return
        from torch.nn.parallel import DistributedDataParallel

        p = next(model.parameters())
        self.device = p.device
        ddp = DistributedDataParallel(
            _HeadAndLoss(model, loss), device_ids=[p.device.index] if p.device.type == "cuda" else None
        )  # broadcasts rank 0's parameters and buffers now, averages gradients in every backward
        self.net = _SliceAndGather(ddp, self.ctx, self.device)

    def labels(self, y: torch.Tensor) -> torch.Tensor:
        """Labels on the device the embeddings are on."""
        return y if not self.ctx.enabled else y.to(self.device)

    def on_main(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` computed on rank 0 and its value sent to every rank.

        When ``fn`` raises on rank 0 it raises there as it is, and the other ranks raise
        :class:`DistributedRankError` with its message (instead of waiting forever).
        """
        if not self.ctx.enabled:
            return fn(*args)
        import torch.distributed as dist

        box: list[Any] = [None]
        error: BaseException | None = None
        if self.ctx.is_main:
            try:
                box[0] = ("ok", fn(*args))
            except Exception as e:  # sent on, then raised below
                error = e
                box[0] = ("error", f"{type(e).__name__}: {e}")
        dist.broadcast_object_list(box, src=0)
        if error is not None:
            raise error
        status, value = box[0]
        if status == "error":
            raise DistributedRankError(f"rank 0 failed: {value}")
        return value

    def broadcast_state(self, module: nn.Module) -> None:
        """Overwrite ``module``'s parameters and buffers on every rank with rank 0's."""
        if not self.ctx.enabled:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in itertools.chain(module.parameters(), module.buffers()):
                dist.broadcast(t.data, src=0)


def share_attributes(obj: Any, ctx: DistContext, *, skip: tuple[str, ...] = ()) -> None:
    """Copy rank 0's fitted attributes (names ending in ``_``, but ``skip``) onto ``obj`` elsewhere.

    Every rank must call it: rank 0 sends, the others set what they receive. A no-op in one
    process. Used so that every process of a ``torchrun`` fit ends with the same fitted estimator,
    although only rank 0 scored the validation identities.
    """
    if not ctx.enabled:
        return
    import torch.distributed as dist

    box: list[Any] = [None]
    if ctx.is_main:
        box[0] = {k: v for k, v in vars(obj).items() if k.endswith("_") and k not in skip}
    dist.broadcast_object_list(box, src=0)
    if not ctx.is_main:
        for k, v in box[0].items():
            setattr(obj, k, v)
