"""What a result measured under ``torchrun`` says of its ranks: how many, the CPUs each local
rank had, and every rank's figures at the pick."""

from __future__ import annotations

import statistics
from typing import Any

from loadertune.records import units
from loadertune.records.result import Result


def rank_lines(result: Result) -> list[str]:
    """None without ranks; else the ranks, then every rank's epoch and data wait at the pick."""
    facts = result.distributed
    if not facts:
        return []
    world, local = facts.get("world_size"), facts.get("local_world_size")
    nodes = facts.get("nodes") or 1
    lines = [
        f"Measured on {world} ranks ({nodes} node{'s' if nodes != 1 else ''} x {local} local, "
        f"{facts.get('backend')}): every trial ran on all ranks at once and counts at its "
        f"slowest rank; each local rank's share of the CPUs: {facts.get('cpus_per_local_rank')}."
    ]
    best = result.best
    if best is None:
        return lines
    per_rank = _per_rank(best.ok_trials)
    if per_rank:
        shown = ", ".join(
            f"rank {rank} {units.seconds(epoch)} (data wait {units.percent(wait)})"
            for rank, (epoch, wait) in sorted(per_rank.items())
        )
        lines.append(f"At {best.config.label()}, per rank (median epoch, data wait): {shown}.")
    return lines


def _per_rank(trials: Any) -> dict[int, tuple[float | None, float | None]]:
    """Median epoch and data wait of each rank over ``trials``' per-rank figures."""
    epochs: dict[int, list[float]] = {}
    waits: dict[int, list[float]] = {}
    for trial in trials:
        for figures in trial.ranks:
            rank = int(figures["rank"])
            if figures.get("epoch_s") is not None:
                epochs.setdefault(rank, []).append(float(figures["epoch_s"]))
            if figures.get("data_wait_fraction") is not None:
                waits.setdefault(rank, []).append(float(figures["data_wait_fraction"]))
    ranks = sorted(set(epochs) | set(waits))
    return {r: (_median(epochs.get(r)), _median(waits.get(r))) for r in ranks}


def _median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None
