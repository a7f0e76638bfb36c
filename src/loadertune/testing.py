"""For projects that prefer a test to a command: the gate of ``loadertune check`` as an
assertion, raising :class:`AssertionError` with the same paragraph the command prints.

>>> from loadertune.testing import assert_loader_keeps_up
>>> def test_the_loader_keeps_up():
...     assert_loader_keeps_up(train_loader, train_step, max_wait=0.2)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadertune.analysis.gate import gate
from loadertune.engine import neighbours
from loadertune.engine.bench import bench
from loadertune.engine.workload import Workload
from loadertune.records import defaults
from loadertune.records.limits import TrialLimits
from loadertune.records.result import Result

__all__ = ["assert_loader_keeps_up"]


def assert_loader_keeps_up(
    loader: Any,
    step: Callable[[Any], Any] | None,
    max_wait: float | None = defaults.MAX_WAIT,
    *,
    baseline: Result | str | Path | None = None,
    tolerance: float = defaults.CHECK_TOLERANCE,
    repeats: int = defaults.CHECK_REPEATS,
    limits: TrialLimits | None = None,
) -> Result:
    """Measure ``loader`` (a DataLoader as configured, a Dataset without workers, or a
    :class:`Workload`) with ``step``, ``repeats`` times, and raise AssertionError when the step
    waits for data more than ``max_wait`` of the time (a share: 0.2 is 20%), or, with a
    ``baseline`` result (or the path of one), when an epoch is slower than the baseline's by
    more than the larger of ``tolerance`` and the noise of both. Returns what was measured."""
    __tracebackhide__ = True  # pytest shows the caller's line and the message, not ours
    if step is None and max_wait is not None:
        raise ValueError("max_wait needs a step: without one the loop only waits for data")
    if max_wait is not None and not 0 <= max_wait <= 1:
        raise ValueError(f"max_wait is a share of the time, 0 to 1 (0.2 is 20%), got {max_wait!r}")
    workload = loader if isinstance(loader, Workload) else Workload(loader, step=step)
    before = Result.load(baseline) if isinstance(baseline, str | Path) else baseline
    start = neighbours.sample()
    result = bench(
        workload,
        [workload.baseline_config()],
        repeats=repeats,
        limits=limits,
        diagnose=False,
        ranks=None,
    )
    failed = [
        c for c in gate(result, before, max_wait=max_wait, tolerance=tolerance) if not c.passed
    ]
    if failed:
        others = neighbours.others_cpus(start, neighbours.sample())
        busy = neighbours.contention_warning(others, result.usable_cpus)
        notes = [f"{c.name}: {c.paragraph}" for c in failed] + ([f"Note: {busy}."] if busy else [])
        raise AssertionError("\n\n".join(notes))
    return result
