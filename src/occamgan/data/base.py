"""The data-source interface and the seeded, resumable batch sampler for in-memory sets."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

import torch
from torch import Tensor

from pydantic import Field

from ..params import MAX_SEED, Params
from ..registry import Registry


class DataConfig(Params):
    """The ``data`` section of the config: the data set and the knobs its readers use."""

    #: registered data set: toy sets (gaussian, ring8, grid25, swissroll) or image sets
    name: str = "ring8"
    #: size of the fixed toy training set (the paper's gaussian set is always 200 points)
    n_samples: int = Field(10_000, ge=1)
    #: standard deviation of each mixture component (ring8, grid25) or noise level (swissroll)
    std: float = Field(0.05, gt=0)
    #: radius of ring8 / half-width of grid25
    radius: float = Field(2.0, gt=0)
    #: seed of the data set itself (fixed across training seeds, as in the paper)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    #: image data: directory or file; None -> $OCCAMGAN_DATA, then the cache directory
    root: str | None = None
    image_size: int | None = Field(None, ge=4)
    channels: int | None = Field(None, ge=1, le=4)
    split: Literal["train", "test"] = "train"
    #: worker processes decoding image files (folders too big for memory stream through them)
    num_workers: int = Field(0, ge=0)
    #: Pillow filter for resizing images (bilinear = torchvision's Resize default on PIL images)
    resize_filter: Literal["bilinear", "bicubic", "lanczos", "box", "nearest"] = "bilinear"
    #: image folders larger than this (as float32 tensors) are streamed from disk, not held in memory
    max_memory_mb: int = Field(2048, ge=0)
    #: fetch missing files of public sets (mnist, fashion_mnist, cifar10) from their canonical source
    download: bool = True
    #: image folders: skip unreadable image files (and report their count) instead of stopping
    skip_bad_files: bool = False


#: name -> factory(DataConfig) -> DataSource
DATASETS: Registry[Callable[..., "DataSource"]] = Registry("data set")


@dataclass
class DataSource:
    """A training set held in memory as one tensor ``data`` of shape (N, *sample_shape).

    Toy mixtures carry their component means (``centers``) and standard deviation so that mode
    metrics apply; ``kind`` is "toy" or "image" and selects the default metrics and plots.
    """

    name: str
    data: Tensor
    kind: str = "toy"
    centers: Tensor | None = None
    std: float | None = None
    #: the paper's chi-square quantile score applies (samples of N(0, I_2))
    standard_normal: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    #: class labels aligned with the samples (image sets that have them), else None
    labels: Tensor | None = None
    #: big sets: a map-style torch Dataset whose item i is ``(i, sample)``, read by
    #: ``num_workers`` worker processes; ``data`` is then empty, of shape (0, *sample_shape)
    stream: Any = None
    num_workers: int = 0
    #: the data section it was built from (to build its other splits: held-out data, a domain
    #: classifier for its metrics); set by :func:`build_data`
    config: Any = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    def __len__(self) -> int:
        return len(self.stream) if self.stream is not None else self.data.shape[0]

    def batch_sampler(self, batch_size: int, seed: int, device: torch.device | str = "cpu", rank: int = 0,
                      world: int = 1):
        """The training batch stream: :class:`BatchSampler` for in-memory data, else
        :class:`StreamingBatchSampler` (same order for the same seed, same interface). With
        ``world > 1`` ``batch_size`` is the global batch and each call returns shard ``rank``."""
        if self.stream is None:
            return BatchSampler(self.data, batch_size, seed, device, rank, world)
        return StreamingBatchSampler(self.stream, batch_size, seed, device, self.num_workers, rank, world)

    def iter_batches(self, batch_size: int) -> Iterator[Tensor]:
        """Every sample once, in stored order, in batches (for reference statistics)."""
        if self.stream is None:
            yield from self.data.split(batch_size)
            return
        loader = torch.utils.data.DataLoader(self.stream, batch_size=batch_size, num_workers=self.num_workers)
        for _, batch in loader:
            yield batch


class BatchSampler:
    """Infinite stream of shuffled batches (epochs without replacement), seeded and resumable.

    The state (generator state, current permutation, position) goes into checkpoints, so a
    resumed run draws exactly the batches of an uninterrupted one.

    Data parallelism (``world > 1``): every rank draws the same global batch of ``batch_size``
    indices from the same seeded stream and keeps its contiguous shard ``rank`` of
    ``batch_size / world`` rows; the state (in global units) is that of the single-process
    sampler, so a checkpoint resumes on any number of ranks.
    """

    def __init__(self, data: Tensor, batch_size: int, seed: int, device: torch.device | str = "cpu", rank: int = 0,
                 world: int = 1):
        self.data = data.to(device)
        self.batch_size = min(batch_size, data.shape[0])
        if self.batch_size % world:
            raise ValueError(f"a batch of {self.batch_size} does not split into {world} equal shards")
        self.rank, self.world = rank, world
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(data.shape[0], generator=self.gen)
        self.pos = 0

    def next(self) -> Tensor:
        if self.pos + self.batch_size > self.perm.numel():
            self.perm = torch.randperm(self.data.shape[0], generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        if self.world > 1:
            size = self.batch_size // self.world
            idx = idx[self.rank * size : (self.rank + 1) * size]
        return self.data[idx.to(self.data.device)]

    def __iter__(self) -> Iterator[Tensor]:
        while True:
            yield self.next()

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])


class StreamingBatchSampler:
    """:class:`BatchSampler`'s contract for data read from files by worker processes.

    The batch order is that of a :class:`BatchSampler` over the indices 0..N-1 (so the same seed
    gives the same batches as the in-memory sampler). Two copies of that index sampler run: one
    feeds the DataLoader (which prefetches ahead), the other advances only when a batch is
    consumed, so ``state_dict`` describes exactly the batches handed out and a resumed run
    continues where the checkpoint was taken. Loading a state restarts the workers.
    """

    def __init__(self, dataset: Any, batch_size: int, seed: int, device: torch.device | str = "cpu",
                 num_workers: int = 0, rank: int = 0, world: int = 1):
        self.dataset, self.device, self.num_workers = dataset, device, num_workers
        self.consumed = BatchSampler(torch.arange(len(dataset)), batch_size, seed, rank=rank, world=world)
        self.batch_size = self.consumed.batch_size
        self._batches: Iterator[Any] | None = None

    def _start(self) -> Iterator[Any]:
        producer = BatchSampler(torch.arange(len(self.dataset)), self.batch_size, 0, rank=self.consumed.rank,
                                world=self.consumed.world)
        producer.load_state_dict(self.consumed.state_dict())
        order = iter(lambda: producer.next().tolist(), None)  # infinite
        # pinned host batches copy to a CUDA device asynchronously (non_blocking below)
        pin = torch.device(self.device).type == "cuda"
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=order, num_workers=self.num_workers,
                                             pin_memory=pin)
        return iter(loader)

    def next(self) -> Tensor:
        if self._batches is None:
            self._batches = self._start()
        expected = self.consumed.next()
        index, batch = next(self._batches)
        if not torch.equal(index, expected):  # would mean a worker/ordering bug, never data-dependent
            raise RuntimeError("streaming sampler received batches out of order")
        return batch.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[Tensor]:
        while True:
            yield self.next()

    def state_dict(self) -> dict[str, Any]:
        return self.consumed.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.consumed.load_state_dict(state)
        self._batches = None  # the workers restart from the loaded position


def for_run(section: Any, run_seed: int) -> Any:
    """The data section a run's data set is built from: with ``seed_from_run`` its ``seed`` is
    the run's seed (and the flag is cleared, the request being met); otherwise unchanged."""
    if not getattr(section, "seed_from_run", False):
        return section
    return section.model_copy(update={"seed": int(run_seed), "seed_from_run": False})


def build_data(cfg: Any) -> DataSource:
    """Build the data set named by ``cfg.data.name`` (``cfg`` is the whole Config)."""
    section = for_run(cfg.data, cfg.seed)
    source = DATASETS.get(cfg.data.name)(section)
    source.config = section
    return source
