"""A run under ``torchrun``: rank 0 leads (its :class:`TrialRunner` sends each trial and the
diagnosis to the others as it starts them), the other ranks follow (:func:`follow`), and every
rank returns rank 0's result, or raises as rank 0 did (so exit codes agree).

A trial starts on every rank together (a barrier): the CPUs are shared as in the job. Each rank
cuts its own trial at its budget; rank 0 takes the slowest rank's as the job's (see
:func:`ranks.slowest`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loadertune.engine.diagnose import diagnose as run_diagnosis
from loadertune.engine.harness import Harness
from loadertune.engine.offline import run_trial
from loadertune.engine.ranks import DIAGNOSE, END, END_WAIT_S, TRIAL, RankLostError, Ranks, joined
from loadertune.engine.trials import Interrupted
from loadertune.engine.workload import Workload
from loadertune.records.errors import LoadertuneWarning
from loadertune.records.result import Result

log = logging.getLogger("loadertune")


def ranks_for(workload: Workload, ranks: Ranks | str | None) -> Ranks | None:
    """The ranks a run measures under (``"auto"``: the user's process group, if any), with
    the workload sharded as a DDP job shards it (see :meth:`Workload.distribute`)."""
    chosen = joined() if ranks == "auto" else ranks
    if not isinstance(chosen, Ranks):
        return None
    warning = workload.distribute(chosen.rank, chosen.world_size)
    if warning is not None and chosen.leader:
        warnings.warn(warning, LoadertuneWarning, stacklevel=3)
    return chosen


def distributed_facts(ranks: Ranks, usable_cpus: int | None) -> dict[str, Any]:
    """The result's ``distributed`` block: the ranks, and the common rules per rank."""
    local = max(ranks.local_world_size, 1)
    per_rank = max((usable_cpus or 1) // local, 1)
    return {
        **ranks.facts(),
        "cpus_per_local_rank": round((usable_cpus or 1) / local, 2),  # 0.5: 4 ranks on 2 CPUs
        "rules": {
            "one per CPU of the rank's share": per_rank,
            "Lightning's cpus // local ranks - 1": max((usable_cpus or 1) // local - 1, 0),
        },
    }


def follow(ranks: Ranks, workload: Workload, harness: Harness) -> Result:
    """A rank other than 0: run what rank 0 orders until its end; rank 0's result, or
    :class:`Interrupted` with it when rank 0 was interrupted."""
    while True:
        kind, arguments = ranks.broadcast()
        if kind == END:
            if arguments.get("error"):
                raise RankLostError(f"rank 0 stopped: {arguments['error']}")
            result: Result = arguments["result"]
            if arguments.get("interrupted"):
                raise Interrupted(result)
            return result
        ranks.barrier()
        if kind == TRIAL:
            ranks.gather(run_trial(workload, harness=harness, **arguments))
        elif kind == DIAGNOSE:
            with contextlib.suppress(Exception):  # rank 0's diagnosis is the one reported
                run_diagnosis(workload, **arguments)
            ranks.gather(None)


@dataclass
class Lead:
    """What rank 0 sends the others at the end: set ``result`` once the run is done."""

    result: Result | None = None

    def finished(self) -> Result:
        if self.result is None:
            raise RuntimeError("the run ended without a result")
        return self.result


@contextlib.contextmanager
def leading(ranks: Ranks | None) -> Iterator[Lead]:
    """Rank 0's run: at its end, however it ends, the others are told (the result, the
    interruption with what was measured, or the error), waiting :data:`END_WAIT_S` at most
    for ranks that may already have gone."""
    lead = Lead()
    try:
        yield lead
    except Interrupted as stop:
        _end(ranks, {"result": stop.result, "interrupted": True}, gone_expected=True)
        raise
    except BaseException as exc:
        _end(ranks, {"error": f"{type(exc).__name__}: {exc}"})
        raise
    _end(ranks, {"result": lead.result})


def _end(ranks: Ranks | None, arguments: dict[str, Any], gone_expected: bool = False) -> None:
    """The run's end told to the other ranks; after an interrupt (which torchrun sends to
    every rank) they may have gone already, and that needs no word."""
    if ranks is None:
        return
    try:
        ranks.broadcast((END, arguments), wait_s=END_WAIT_S)
    except RankLostError as gone:
        if not gone_expected:
            log.warning("the other ranks were not told the run ended: %s", gone)
