"""Which examples go into which batch, in what order: seeded, resumable, optionally by length.

Part of `fit` (llm_course.training.loop). Each epoch has its own seeded order, so resuming
from a checkpoint replays the same stream; `group_by_length` (shown in lesson 05, used by
05-07) batches examples of similar length together so little time goes on padding.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from llm_course.env import dry_run
from llm_course.training.config import TrainConfig
from llm_course.training.data_checks import collate


def batches_per_epoch(dataset: Any, batch_size: int, world: int = 1) -> int | None:
    """Micro-batches per epoch on each process (None for a dataset without a length)."""
    if not hasattr(dataset, "__len__"):
        return None
    per_process = len(dataset) // world
    if per_process == 0:
        raise ValueError(f"the training set has {len(dataset)} examples: too few for {world} processes")
    return math.ceil(per_process / batch_size)


def total_steps_for(cfg: TrainConfig, per_epoch: int | None) -> int:
    """Optimizer steps in the run: max_steps, or epochs x micro-batches / grad_accum."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    if per_epoch is None:
        raise ValueError("this dataset has no length (an IterableDataset): set max_steps")
    epochs = 1.0 if cfg.epochs is None else cfg.epochs
    return max(1, math.ceil(epochs * per_epoch / cfg.grad_accum))


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """The shuffled example indices of `epoch` for process `rank`: fixed by (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    order = order[: n - n % world]  # every process gets the same number of examples
    return order[rank::world]


def length_grouped(order: list[int], lengths: Sequence[int], batch_size: int, seed: int,
                   epoch: int, mega: int = 50) -> list[list[int]]:
    """`order` cut into batches of similar length, the batches in a shuffled order.

    Each run of `mega` batches of the shuffled order is sorted by length and cut into
    batches, so a batch pads to nearly its own examples' length instead of the longest in a
    random draw; shuffling the batches afterwards keeps long and short ones mixed over
    time. Fixed by (seed, epoch), like `epoch_order` (what Hugging Face's Trainer calls
    `group_by_length`). `padding_share` measures what it saves.
    """
    span = batch_size * mega
    batches = []
    for i in range(0, len(order), span):
        chunk = sorted(order[i:i + span], key=lambda j: lengths[j], reverse=True)
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7)
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def padding_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of the positions in `batches` (lists of example indices) that are padding,
    each batch padded to its longest example (what lesson 05 prints for random and grouped)."""
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return 1 - sum(lengths[i] for b in batches for i in b) / padded if padded else 0.0


def example_lengths(dataset: Any) -> list[int]:
    """Tokens per example of a dataset with an `input_ids` column (for `group_by_length`)."""
    names = getattr(dataset, "column_names", None) or []
    if "input_ids" not in names:
        raise ValueError("group_by_length=True needs a dataset with an 'input_ids' column "
                         "(tokenized examples); set group_by_length=False for this data")
    return [len(ids) for ids in dataset["input_ids"]]


def micro_batches(dataset: Any, cfg: TrainConfig, collate_fn: Callable | None, start: int = 0,
                  rank: int = 0, world: int = 1, pin_memory: bool = False) -> Iterator[dict]:
    """Yield micro-batches forever, epoch after epoch, skipping the first `start`.

    The order of each epoch depends only on (seed, epoch), so a resumed run that skips the
    micro-batches it already used sees exactly what the uninterrupted run would have seen.
    A dry run's micro-batches hold 2 rows (`llm_course.env.dry_run.rows`).
    """
    from torch.utils.data import DataLoader

    collate_fn = collate_fn or collate  # default_collate; unpadded examples get a DataError
    kw = {"collate_fn": collate_fn, "num_workers": cfg.num_workers, "pin_memory": pin_memory,
          "generator": torch.Generator()}  # private generator: never touches the global RNG
    bs = dry_run.rows(cfg.batch_size)  # 2 rows in a dry run
    per_epoch = batches_per_epoch(dataset, bs, world)
    if per_epoch is None:  # streaming dataset: read and drop what was already used
        if cfg.group_by_length:
            raise ValueError("group_by_length=True needs a dataset with a length, not a stream: "
                             "set group_by_length=False, or load the data without streaming")
        loader = DataLoader(dataset, batch_size=bs, **kw)
        stream = itertools.chain.from_iterable(loader for _ in itertools.count())
        yield from itertools.islice(stream, start, None)
        return
    epoch, skip = divmod(start, per_epoch)
    lengths = example_lengths(dataset) if cfg.group_by_length else None
    while True:
        order = epoch_order(len(dataset), cfg.seed, epoch, rank, world)
        if lengths is None:
            plan = [order[i:i + bs] for i in range(0, len(order), bs)][skip:]
        else:
            plan = length_grouped(order, lengths, bs, cfg.seed, epoch)[skip:]
        yield from DataLoader(dataset, batch_sampler=plan, **kw)
        epoch, skip = epoch + 1, 0
