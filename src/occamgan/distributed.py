"""Data-parallel training on torch.distributed, without DDP: a distributed step is, by
construction, the single-process step on the global batch (docs/scaling.md).

- *Process group* from the environment that ``torchrun`` (or ``occamgan train --nproc N``,
  :func:`launch`) sets: NCCL on CUDA, gloo on the CPU, each rank on ``cuda:LOCAL_RANK``. Nothing
  here does anything in a plain single process: every helper is then the identity, so
  single-process runs draw, compute and write exactly what they did before.
- *Shared randomness*: every rank holds the same global RNG state (the run's seeded stream) and
  the same batch-sampler state. Whatever a step draws for its batch (indices, latents, WGAN-GP
  interpolation weights, likelihood-relaxation noise) is drawn for the **global** batch on every
  rank, and each rank keeps its contiguous shard (:func:`shard`, :func:`randn_like`,
  :func:`rand`). Dropout masks are the exception: drawn per rank from a stream seeded off the
  shared one (:func:`decorrelate_dropout`), so ranks do not repeat each other's masks and the
  shared stream stays in step on every rank.
- *Averaging*: update rules average what they differentiate over the ranks in flat buckets
  (:func:`average_gradients`, :func:`average_`, one all-reduce per dtype and device, as
  StyleGAN2-ADA does): losses are means over the local shard, so the mean over equal shards of
  local-mean gradients is the gradient of the global-mean loss. The same holds for mixed
  Hessian-vector products (competitive rules). Where a loss differentiates a gradient
  (gradient regularisation), :func:`average_differentiable` averages it inside the graph.
- *BatchNorm*: :class:`SyncBatchNorm` normalises with the global-batch statistics through
  differentiable all-reduces (CPU and CUDA, double backward included, which torch's own
  SyncBatchNorm supports on neither the CPU nor second derivatives); its state dict is that of
  a BatchNorm, so checkpoints load into single-process models.
- *Rank 0 writes*, the others compute; :func:`on_main` runs a decision (the run directory,
  reading a checkpoint) on rank 0 and hands its result or its error to every rank.
- *Failures*: a rank that raises exits non-zero; the elastic agent (torchrun, :func:`launch`)
  stops the others at once, and a peer blocked in a collective gets an error (gloo: the closed
  connection; NCCL: the process-group timeout, ``OCCAMGAN_DIST_TIMEOUT`` seconds, default 1800)
  instead of hanging. :func:`launch` names the rank that failed first.
"""
from __future__ import annotations

import atexit
import datetime
import os
import sys
import uuid
from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

T = TypeVar("T")

#: seconds a collective waits for its peers before failing (NCCL aborts, gloo raises)
TIMEOUT_ENV = "OCCAMGAN_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800
#: elements per flat all-reduce bucket (256 MB of float32): bounds the extra memory of a bucket
BUCKET_ELEMENTS = 1 << 26


# --------------------------------------------------------------------------- who am I
def launched() -> bool:
    """This process is one of several started by torchrun (or :func:`launch`)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    """More than one rank trains this run."""
    return world_size() > 1


def is_main() -> bool:
    """Rank 0, the one that writes the run directory (also True in a single process)."""
    return rank() == 0


def rank_label() -> str:
    """``"rank R of W"`` when launched as one of several processes, else ""."""
    if not launched():
        return ""
    return f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}"


def local_device(device: torch.device) -> torch.device:
    """A rank's CUDA device is ``cuda:LOCAL_RANK``; an explicit index or another type is kept."""
    if launched() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank())
    return device


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def init(device: torch.device) -> bool:
    """Join the process group described by the torchrun environment (NCCL for a CUDA device,
    gloo otherwise); a no-op outside torchrun or when already joined. True when distributed."""
    if not launched():
        return False
    if is_initialized():
        return is_distributed()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds()))
    atexit.register(shutdown)
    return is_distributed()


def shutdown() -> None:
    if is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # a peer already gone: nothing left to tear down cleanly
            pass


def _comm_device() -> torch.device:
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# --------------------------------------------------------------------------- shards
def global_batch(local: int) -> int:
    """The global batch size whose shard has ``local`` rows."""
    return local * world_size()


def shard(x: Tensor, dim: int = 0) -> Tensor:
    """This rank's contiguous shard of a global-batch tensor (``x`` itself in one process)."""
    w = world_size()
    if w == 1:
        return x
    n = x.shape[dim]
    if n % w:
        raise ValueError(f"a batch of {n} rows does not split into {w} equal shards")
    size = n // w
    return x.narrow(dim, rank() * size, size)


def randn_like(x: Tensor) -> Tensor:
    """``torch.randn_like(x)`` for a shard ``x``: the rank's rows of the global-batch draw."""
    if not is_distributed():
        return torch.randn_like(x)
    shape = (global_batch(x.shape[0]), *x.shape[1:])
    return shard(torch.randn(shape, dtype=x.dtype, device=x.device))


def rand(shape: Sequence[int], device: torch.device | str, dtype: torch.dtype) -> Tensor:
    """``torch.rand(shape)`` for a shard of ``shape[0]`` rows, drawn for the global batch."""
    if not is_distributed():
        return torch.rand(tuple(shape), device=device, dtype=dtype)
    return shard(torch.rand((global_batch(shape[0]), *shape[1:]), device=device, dtype=dtype))


def sample_latent(game: Any, local: int) -> Tensor:
    """The latents of a shard of ``local`` rows: the global batch's, drawn on every rank."""
    return shard(game.sample_latent(global_batch(local)))


def check_batch_size(batch_size: int, what: str = "train.batch_size") -> None:
    """The global batch splits into equal shards (one-line ConfigError otherwise)."""
    w = world_size()
    if w > 1 and batch_size % w:
        from .errors import ConfigError

        raise ConfigError(f"config key {what}: the global batch {batch_size} does not split into {w} equal "
                          f"shards; use a multiple of {w}")


# --------------------------------------------------------------------------- averaging
def _buckets(tensors: Sequence[Tensor]) -> Iterable[list[Tensor]]:
    """Tensors grouped by device and dtype, each group cut into buckets of bounded size."""
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for group in groups.values():
        bucket: list[Tensor] = []
        size = 0
        for t in group:
            if bucket and size + t.numel() > BUCKET_ELEMENTS:
                yield bucket
                bucket, size = [], 0
            bucket.append(t)
            size += t.numel()
        if bucket:
            yield bucket


def average_(tensors: Sequence[Tensor]) -> None:
    """Average ``tensors`` over the ranks, in place, one flat all-reduce per bucket."""
    w = world_size()
    if w == 1:
        return
    for bucket in _buckets([t for t in tensors if t is not None]):
        if len(bucket) == 1 and bucket[0].is_contiguous():
            flat = bucket[0].view(-1)
            dist.all_reduce(flat)
            flat.div_(w)
            continue
        flat = torch.cat([t.reshape(-1) for t in bucket])
        dist.all_reduce(flat)
        flat.div_(w)
        for t, part in zip(bucket, flat.split([t.numel() for t in bucket])):
            t.copy_(part.view_as(t))


def average_flat(vector: Tensor) -> Tensor:
    """A flat vector averaged over the ranks (in place; returned for chaining)."""
    average_([vector])
    return vector


def average_gradients(params: Iterable[Tensor]) -> None:
    """The ``.grad`` of every parameter averaged over the ranks (parameters without a gradient
    have none on every rank: the ranks run the same graph)."""
    if is_distributed():
        average_([p.grad for p in params if p.grad is not None])


def average_optimizer_gradients(opt: torch.optim.Optimizer) -> None:
    if is_distributed():
        average_gradients(p for group in opt.param_groups for p in group["params"])


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks with a graph: the gradient of a sum that every rank holds is the sum
    of the ranks' gradients, itself an all-reduce (so second derivatives work too)."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:  # type: ignore[override]
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        return _AllReduceSum.apply(grad)


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Differentiable all-reduce (sum over the ranks); ``tensor`` itself in one process."""
    return _AllReduceSum.apply(tensor) if is_distributed() else tensor


def average_differentiable(tensors: Sequence[Tensor | None]) -> list[Tensor | None]:
    """Tensors averaged over the ranks *inside* the autograd graph (the backward of an
    all-reduce is an all-reduce), for a loss that is a function of a gradient: with the
    averaged gradient it is the function of the global-batch gradient, and the averaged
    parameter gradients of the ranks are its gradient."""
    if not is_distributed():
        return list(tensors)
    present = [t for t in tensors if t is not None]
    if not present:
        return list(tensors)
    flat = torch.cat([t.reshape(-1) for t in present])
    flat = all_reduce_sum(flat) / world_size()
    parts = iter(p.view_as(t) for p, t in zip(flat.split([t.numel() for t in present]), present))
    return [None if t is None else next(parts) for t in tensors]


# --------------------------------------------------------------------------- agreement
def agree_on_step(stats: dict[str, Any], signum: int | None,
                  check_signal: bool = True) -> tuple[dict[str, Any], int | None]:
    """After a step: the loss statistics averaged over the ranks (the global-batch losses, so
    that every rank's NaN guard sees the same values) and the signal to stop on now, if any. In
    one process that is ``signum`` itself. Data-parallel, it is agreed at ``check_signal`` steps
    only (the largest pending signal number of any rank, else None), so that every rank stops
    after the same step; in between it is None and a rank's own signal stays pending.

    The losses are averaged by an all-reduce on the communication device and stay tensors there:
    no host synchronisation per step (the NaN guard folds them into its device flag). Agreeing
    on a signal needs the host to read a number, so the trainer asks for it only at the steps
    where something is written (log, checkpoint, the last step); a signal received in between
    stops the run at the next such step."""
    if not is_distributed():
        return stats, signum
    keys = [k for k, v in stats.items() if k.startswith("loss") and _is_number(v)]
    agreed = dict(stats)
    if keys:
        device = _comm_device()
        local = torch.stack([_as_tensor(stats[k], device) for k in keys])
        dist.all_reduce(local)
        local /= world_size()
        agreed.update(zip(keys, local.unbind()))
    if not check_signal:
        return agreed, None
    flag = torch.tensor([float(signum or 0)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # signal numbers are positive: any one stops all
    return agreed, (int(flag.item()) or None)


def _as_tensor(value: Any, device: torch.device) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().reshape(()).to(device=device, dtype=torch.float64)
    return torch.tensor(float(value), dtype=torch.float64, device=device)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) or (isinstance(value, Tensor) and value.numel() == 1)


def check_in_sync(tensors: Iterable[Tensor], what: str = "parameters") -> None:
    """Raise TrainingError when the ranks hold different ``tensors`` or RNG states (they never
    should: every rank applies the same averaged update from the same state)."""
    if not is_distributed():
        return
    parts = [t.detach().double().sum().reshape(1).to(_comm_device()) for t in tensors]
    rng = torch.get_rng_state().double().sum().reshape(1).to(_comm_device())
    local = torch.cat(parts + [rng])
    gathered = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(gathered, local)
    table = torch.stack(gathered).cpu()
    bad = [r for r in range(1, world_size()) if not torch.equal(table[r], table[0])]
    if bad:
        from .errors import TrainingError

        which = "RNG state" if torch.equal(table[bad[0], :-1], table[0, :-1]) else what
        raise TrainingError(f"data-parallel ranks {bad} hold a different {which} than rank 0 "
                            "(something drew randomness or changed weights on one rank only)")


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0 only, its result (or its error, re-raised) handed to every rank."""
    if not is_distributed():
        return fn()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", fn())
        except Exception as exc:  # every rank raises it, not only rank 0
            box[0] = ("error", (type(exc), str(exc)))
    dist.broadcast_object_list(box, src=0, device=_comm_device() if _comm_device().type == "cuda" else None)
    kind, value = box[0]
    if kind == "error":
        raise _rebuild(*value)
    return value


def _rebuild(kind: type, message: str) -> Exception:
    from .errors import Interrupted, OccamError

    if issubclass(kind, OccamError) and kind is not Interrupted:
        try:
            return kind(message)
        except TypeError:
            pass
    return RuntimeError(f"on rank 0: {kind.__name__}: {message}")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


# --------------------------------------------------------------------------- BatchNorm
class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch: the per-channel mean, then the variance around it, are
    all-reduced over the ranks inside the graph, so gradients (and second derivatives, for
    gradient penalties and competitive rules) are those of BatchNorm on the whole batch.
    Outside training, or in a single process, it is a plain BatchNorm. Parameters, buffers and
    state-dict keys are those of the BatchNorm it replaces (:func:`convert_sync_batchnorm`).
    Statistics are computed in float32 (float64 inputs keep float64)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not (self.training and is_distributed()):
            return super().forward(input)
        all_reduce = all_reduce_sum
        x = input if input.dtype == torch.float64 else input.float()
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count_local = x.numel() // x.shape[1]
        sums = all_reduce(torch.cat([x.sum(dims), x.new_tensor([float(count_local)])]))
        count = sums[-1].detach()
        mean = sums[:-1] / count
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean.detach(), var.detach(), float(count))
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, count: float) -> None:
        self.num_batches_tracked.add_(1)
        momentum = self.momentum
        if momentum is None:  # cumulative moving average
            momentum = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm in ``module`` replaced, in place, by a :class:`SyncBatchNorm` holding the
    very same parameter and buffer tensors (optimisers built before keep working)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncBatchNorm):
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats)
            sync.training = child.training
            for key in ("weight", "bias"):
                setattr(sync, key, getattr(child, key))
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                sync._buffers[key] = child._buffers.get(key)
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm(child)
    return module


def has_batchnorm(module: nn.Module | None) -> bool:
    return module is not None and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


# --------------------------------------------------------------------------- dropout
#: spacing of the ranks' dropout seeds (any odd constant spreads them; this is 2^64 / golden ratio)
_RANK_STRIDE = 0x9E3779B97F4A7C15


def decorrelate_dropout(module: nn.Module) -> int:
    """Each training-mode dropout layer of ``module`` draws its masks from a stream of its rank:
    before the layer runs, one seed is drawn from the shared global stream (the same on every
    rank, so that stream stays in step), the RNG is reseeded with (seed, rank) for the mask,
    and the shared state is put back afterwards. A resumed run redraws the same masks (the
    seeds come from the checkpointed stream). Returns the number of layers hooked."""
    if not is_distributed():
        return 0
    from .bayes.mc_dropout import DROPOUT_TYPES

    me = rank()
    count = 0
    for layer in module.modules():
        if isinstance(layer, DROPOUT_TYPES) and getattr(layer, "p", 0) > 0:
            layer.register_forward_pre_hook(lambda m, args, me=me: _enter_rank_stream(m, me))
            layer.register_forward_hook(lambda m, args, out: _leave_rank_stream(m))
            count += 1
    return count


def _enter_rank_stream(layer: nn.Module, me: int) -> None:
    if not layer.training:
        return
    seed = int(torch.randint(0, 2**62, (1,)).item())
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    saved = (torch.get_rng_state(), torch.cuda.get_rng_state() if cuda else None)
    layer._occamgan_shared_rng = saved  # type: ignore[attr-defined]
    torch.manual_seed((seed + me * _RANK_STRIDE) % (2**63))


def _leave_rank_stream(layer: nn.Module) -> None:
    saved = getattr(layer, "_occamgan_shared_rng", None)
    if saved is None:
        return
    torch.set_rng_state(saved[0])
    if saved[1] is not None:
        torch.cuda.set_rng_state(saved[1])
    layer._occamgan_shared_rng = None  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- launching
def launch(argv: Sequence[str], nproc: int, module: str = "occamgan") -> int:
    """``python -m <module> <argv>`` in ``nproc`` local processes under torch's elastic agent
    (what ``torchrun --standalone --nproc-per-node N`` does: a rendezvous on a free port, and
    the other ranks stopped as soon as one fails). Returns the exit code; on a failure, one
    line names the rank that failed first."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        elastic_launch(config, sys.executable)("-m", module, *argv)
    except ChildFailedError as exc:
        failed, failure = exc.get_first_failure()
        code = failure.exitcode if isinstance(failure.exitcode, int) and failure.exitcode > 0 else 1
        detail = failure.message if isinstance(failure.message, str) else ""
        detail = detail.strip().splitlines()[-1] if detail.strip() and "error_file" not in detail else ""
        others = sorted(r for r in exc.failures if r != failed)
        tail = f"; then rank(s) {others} stopped" if others else ""
        print(f"error: rank {failed} of {nproc} failed first (exit code {code}"
              f"{': ' + detail if detail else ''}){tail}; its message is above", file=sys.stderr)
        return code
    return 0


def record(fn: Callable[..., T]) -> Callable[..., T]:
    """torch's error recorder when launched by torchrun (the agent then reports a failed rank's
    traceback), ``fn`` unchanged otherwise."""
    if not launched():
        return fn
    from torch.distributed.elastic.multiprocessing.errors import record as torch_record

    return torch_record(fn)


def describe() -> str:
    """One line for logs: backend, world size, this rank."""
    if not is_initialized():
        return "single process"
    return f"{dist.get_backend()} rank {rank()} of {world_size()}"


__all__ = ["SyncBatchNorm", "agree_on_step", "average_", "average_differentiable", "average_flat",
           "average_gradients", "average_optimizer_gradients", "barrier", "check_batch_size", "check_in_sync",
           "convert_sync_batchnorm", "decorrelate_dropout", "global_batch", "has_batchnorm", "init",
           "is_distributed", "is_main", "launch", "launched", "local_device", "local_rank", "on_main", "rand",
           "randn_like", "rank", "rank_label", "record", "sample_latent", "shard", "shutdown",
           "timeout_seconds", "world_size"]

