"""Turning what user code raised into one clear line that names the cause."""

from __future__ import annotations

import pickle
import re
import traceback
from pathlib import Path
from typing import Any

from loadertune.core.errors import TrialTimeout
from loadertune.core.guard import Watchdog
from loadertune.core.probe import IndexRecorder
from loadertune.core.trial import Trial, TrialError
from loadertune.core.workload import Workload

WORKER_DIED_MARKERS = ("exited unexpectedly", "is killed by signal", "DataLoader worker (pid")
PINPOINT_MAX_INDICES = 4096  # re-fetching a failing batch sample by sample is cheap up to this
PINPOINT_TIMEOUT_S = 10.0  # the re-fetch runs user code again; it must not hang the command


def explain(
    exc: BaseException, trial: Trial, workload: Workload, recorder: IndexRecorder
) -> TrialError:
    """A :class:`TrialError` for ``exc``, raised while fetching or stepping the next batch."""
    from loadertune.core.runner import StepError

    batch = trial.batches
    if _is_pickling_error(exc):
        method = trial.config.multiprocessing_context or _default_start_method()
        return TrialError(
            "unpicklable",
            f"the dataset, collate_fn or worker_init_fn cannot be sent to {method} workers "
            f"({_own_message(exc)}); define them at module level without lambdas or open "
            "handles, or use the fork start method",
        )

    if isinstance(exc, StepError):
        return TrialError("step", f"the step raised {_own_message(exc.cause)}", batch=exc.batch)
    if isinstance(exc, TrialTimeout):
        return TrialError("timeout", f"timed out: {exc}", batch=batch)
    message = _own_message(exc)
    if isinstance(exc, RuntimeError) and any(m in str(exc) for m in WORKER_DIED_MARKERS):
        return TrialError("worker_died", message, batch=batch)
    index = None
    try:
        with Watchdog(PINPOINT_TIMEOUT_S):
            index = _pinpoint(workload, recorder.indices_of(batch), type(exc))
    except TrialTimeout:
        pass
    if index is not None:
        return TrialError("exception", _own_message(index[1]), index=index[0], batch=batch)
    return TrialError("exception", f"{message} {_where(exc)}".rstrip(), batch=batch)


def _default_start_method() -> str:
    import multiprocessing

    return multiprocessing.get_start_method(allow_none=True) or "the default start method's"


def _is_pickling_error(exc: BaseException) -> bool:
    if isinstance(exc, pickle.PicklingError):
        return True
    text = str(exc)
    return isinstance(exc, AttributeError | TypeError) and (
        "pickle" in text.lower() and "Original Traceback" not in text
    )


def _own_message(exc: BaseException) -> str:
    """``Type: message`` as the user's code wrote it, without DataLoader's worker wrapping."""
    text = str(exc)
    if "Original Traceback" in text:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1].strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


_FRAME_LINE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _where(exc: BaseException) -> str:
    """``(in my_collate, data.py:12)``: the innermost frame, for errors no sample explains
    (a collate_fn or worker_init_fn that raises), from a worker's traceback text or our own."""
    frames = _FRAME_LINE.findall(str(exc))
    if frames:
        path, line, func = frames[-1]
    else:
        extracted = traceback.extract_tb(exc.__traceback__)
        if not extracted:
            return ""
        path, line, func = extracted[-1].filename, str(extracted[-1].lineno), extracted[-1].name
    return f"(in {func}, {Path(path).name}:{line})"


def _pinpoint(
    workload: Workload, indices: list[Any] | None, exc_type: type[BaseException]
) -> tuple[Any, BaseException] | None:
    """Re-fetch a failing batch's samples in this process to find the index that raises.

    Only exceptions of the same type count; a batch that loads cleanly sample by sample failed
    elsewhere (collate_fn, worker_init_fn) and no index is named.
    """
    if not indices or len(indices) > PINPOINT_MAX_INDICES:
        return None
    dataset = workload.dataset
    for index in indices:
        try:
            dataset[index]
        except Exception as exc:  # noqa: BLE001 - we are looking for the user's own exception
            if isinstance(exc, exc_type) or "Original Traceback" in str(exc):
                return index, exc
            return None
    return None
