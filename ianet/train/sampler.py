"""The order of training batches: a function of (seed, epoch), the same on any world size."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Shuffled global batches, the last partial one dropped, each split over the ranks.

    Epoch e's order is ``randperm(len, seed + e)``; global batch k is its k-th slice of
    ``batch_size``; rank r of w takes the r-th of w equal parts of every global batch. So
    which samples make up step k does not depend on the number of processes, and resuming
    mid-epoch skips exactly the batches already consumed (``start``).

    Yields lists of dataset keys ``(index, epoch)`` (the epoch seeds the augmentations).
    """

    def __init__(
        self, length: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} cannot be split evenly over {world_size} processes"
            )
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.length // self.batch_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` from its global batch ``start`` on."""
        self.epoch = epoch
        self.start = start

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.length, generator=generator).tolist()
        part = self.batch_size // self.world_size
        for batch in range(self.start, self.batches_per_epoch):
            first = batch * self.batch_size + self.rank * part
            yield [(index, self.epoch) for index in order[first : first + part]]
