"""Ranks: one process per rank under ``torchrun``, every rank measuring the same config at once.

Rank 0 leads: it runs the search and sends each order (run this trial, diagnose, the end and
its result) to the others, which follow (:func:`follow`); each rank's trial comes back to rank
0, and the job's pace is its slowest rank's (:func:`slowest`). So every decision is taken once,
on rank 0's clock, from every rank's figures, and no rank can diverge on its own.

Messages go over a gloo group of our own, made by ``torch.distributed`` (torchrun's rendezvous,
no socket of ours). Every wait polls an asynchronous collective, so Ctrl-C and torchrun's
SIGTERM reach the waiting rank at once, and a rank that died ends the wait with an error
(:class:`RankLostError`) instead of a hang.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
from dataclasses import dataclass
from typing import Any

from loadertune.engine.failures import first_line
from loadertune.records.errors import LoadertuneWarning
from loadertune.records.trial import Trial

TRIAL, DIAGNOSE, END = "trial", "diagnose", "end"  # rank 0's orders to the others
POLL_S = 0.005  # how often a waiting rank looks at its collective (and lets a signal in)
END_WAIT_S = 10.0  # rank 0's last message waits this long for ranks that may have gone
ARRIVE_S = 60.0  # a group of ours is made once every rank of the job asked for it within this
# (a loader only rank 0 iterates, for validation, tunes alone instead of waiting for the rest)
_asked = 0  # groups of ours asked for so far, in this process (the same order on every rank)


class RankLostError(RuntimeError):
    """A collective failed: another rank stopped (its error or its signal ended it)."""


@dataclass
class Ranks:
    """This process's place among the ranks, and the gloo group the ranks talk over."""

    rank: int
    world_size: int
    local_world_size: int
    group: Any
    owned: bool = False  # we made the default group (the CLI): destroyed by close()
    backend: str = "gloo"

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def facts(self) -> dict[str, Any]:
        """JSON-ready: the ranks a result was measured under."""
        return {
            "world_size": self.world_size,
            "local_world_size": self.local_world_size,
            "nodes": max(self.world_size // max(self.local_world_size, 1), 1),
            "backend": self.backend,
        }

    def broadcast(self, message: Any = None, wait_s: float | None = None) -> Any:
        """Rank 0's ``message``, on every rank (the others pass nothing)."""
        import torch

        payload = _pack(message) if self.leader else None
        size = torch.tensor([len(payload) if payload is not None else 0], dtype=torch.int64)
        self._wait(self._dist().broadcast(size, 0, group=self.group, async_op=True), wait_s)
        data = payload if payload is not None else torch.empty(int(size.item()), dtype=torch.uint8)
        self._wait(self._dist().broadcast(data, 0, group=self.group, async_op=True), wait_s)
        return message if self.leader else pickle.loads(data.numpy().tobytes())  # noqa: S301

    def gather(self, message: Any) -> list[Any] | None:
        """Every rank's ``message``, in rank order, on rank 0 (None on the others)."""
        import torch

        dist = self._dist()
        payload = _pack(message)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world_size)]
        mine = torch.tensor([len(payload)], dtype=torch.int64)
        self._wait(dist.all_gather(sizes, mine, group=self.group, async_op=True))
        longest = max(int(s.item()) for s in sizes)
        padded = torch.zeros(longest, dtype=torch.uint8)
        padded[: len(payload)] = payload
        slots = [torch.empty(longest, dtype=torch.uint8) for _ in range(self.world_size)]
        self._wait(dist.all_gather(slots, padded, group=self.group, async_op=True))
        if not self.leader:
            return None
        return [
            pickle.loads(slot[: int(n.item())].numpy().tobytes())  # noqa: S301 - our own ranks
            for slot, n in zip(slots, sizes, strict=True)
        ]

    def start(self, kind: str, arguments: dict[str, Any]) -> None:
        """Rank 0: tell the others to start ``kind`` with ``arguments``; all start together."""
        self.broadcast((kind, arguments))
        self.barrier()

    def slowest_of(self, mine: Trial) -> Trial:
        """Every rank's trial, collected on rank 0: the job's (see :func:`slowest`)."""
        every = self.gather(mine)
        return slowest(list(every or [mine]))

    def barrier(self) -> None:
        """Every rank here: what follows starts together."""
        import torch

        flag = torch.zeros(1)
        self._wait(self._dist().all_reduce(flag, group=self.group, async_op=True))

    def close(self) -> None:
        """The default group destroyed, where we made it."""
        if self.owned:
            dist = self._dist()
            if dist.is_initialized():
                dist.destroy_process_group()

    def _wait(self, work: Any, wait_s: float | None = None) -> None:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while not work.is_completed():
            if deadline is not None and time.monotonic() > deadline:
                raise RankLostError("the other ranks did not answer")
            time.sleep(POLL_S)
        try:
            work.wait()
        except RuntimeError as exc:
            raise RankLostError(f"another rank stopped ({first_line(exc)})") from exc

    @staticmethod
    def _dist() -> Any:
        import torch.distributed as dist

        return dist


def from_env() -> Ranks | None:
    """The ranks torchrun started, for our command: the default group made with gloo from
    torchrun's environment (its rendezvous), or None when not under torchrun with 2+ ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world < 2 or "RANK" not in os.environ:
        return None
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo")
    return _ranks(dist.group.WORLD if owned else dist.new_group(backend="gloo"), owned)


def joined(arrive_s: float | None = None) -> Ranks | None:
    """The ranks of the user's process group, if the job made one with 2+ ranks: a gloo group
    of our own beside it (the user's NCCL traffic is untouched), or None. Made only where
    every rank asks for it within ``arrive_s`` (default :data:`ARRIVE_S`; see
    :func:`all_arrived`); else None, with a warning, on every rank that asked."""
    import torch.distributed as dist

    arrive_s = ARRIVE_S if arrive_s is None else arrive_s
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    if not all_arrived(arrive_s):
        warnings.warn(
            f"not every rank of the job used this loadertune run within {arrive_s:.0f} s: "
            "this rank tunes alone (under torch.distributed every rank must iterate a "
            "loadertune.DataLoader, or call tune, for the ranks to agree; pass ranks=None "
            "for one that only some ranks use)",
            LoadertuneWarning,
            stacklevel=3,
        )
        return None
    return _ranks(dist.new_group(backend="gloo"), owned=False)


def all_arrived(arrive_s: float) -> bool:
    """Whether every rank asked for this group (the job's n-th of ours) within ``arrive_s``,
    agreed over the job's own store (torchrun's rendezvous): each rank counts itself in; the
    first to see them all, or to give up waiting, writes the verdict, once, and every rank
    (a late one too) reads it. A group made where one rank never asks would hang the rest."""
    global _asked  # noqa: PLW0603 - our own counter, not the user's state
    import torch.distributed as dist

    _asked += 1
    try:
        store = dist.distributed_c10d._get_default_store()
    except (AttributeError, ValueError, RuntimeError):
        return True  # no store to ask: as before, every rank is taken to be here
    key = f"loadertune/group/{_asked}"
    if store.add(f"{key}/arrived", 1) >= dist.get_world_size():
        store.compare_set(f"{key}/verdict", "", "all")
    deadline = time.monotonic() + arrive_s
    while not store.check([f"{key}/verdict"]):
        if time.monotonic() > deadline:
            store.compare_set(f"{key}/verdict", "", "alone")
            break
        time.sleep(POLL_S * 10)
    return bool(store.get(f"{key}/verdict") == b"all")


def _ranks(group: Any, owned: bool) -> Ranks:
    import torch.distributed as dist

    world = dist.get_world_size()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world) or world)
    return Ranks(dist.get_rank(), world, local, group, owned=owned)


def slowest(trials: list[Trial]) -> Trial:
    """The job's trial from every rank's (in rank order): a failed rank's if any failed (the
    job fails with it), else the rank whose epoch is longest (a job goes at its slowest rank's
    pace). Every rank's figures go with it, in ``ranks``."""
    figures = [rank_figures(rank, t) for rank, t in enumerate(trials)]
    failed = [t for t in trials if not t.ok]
    if failed:
        chosen = failed[0]
    else:
        chosen = max(trials, key=lambda t: t.epoch_s if t.epoch_s is not None else float("inf"))
    chosen.ranks = figures
    return chosen


def rank_figures(rank: int, trial: Trial) -> dict[str, Any]:
    """One rank's figures of a trial, JSON-ready."""
    return {
        "rank": rank,
        "status": trial.status,
        "error": str(trial.error) if trial.error else None,
        "epoch_s": trial.epoch_s,
        "data_wait_fraction": trial.data_wait_fraction,
        "batches": trial.batches,
        "samples_per_s": trial.samples_per_s,
    }


def _pack(message: Any) -> Any:
    import torch

    return torch.frombuffer(bytearray(pickle.dumps(message)), dtype=torch.uint8)
