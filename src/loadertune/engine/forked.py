"""Fork after CUDA: whether forked workers can serve this dataset once the main process has
initialised CUDA.

The CUDA runtime does not survive fork: a forked worker that touches CUDA raises "Cannot
re-initialize CUDA in forked subprocess". Workers that only index, decode and collate on the
CPU (the usual case, and what most GPU jobs run on Linux) are fine. So where CUDA is already
initialised before workers start and the workers would fork, one forked worker is asked for
one batch, before the search: where it breaks, fork is not tried and the reason is shown;
where it works, fork stays (it starts workers fastest). Nothing is checked where CUDA is not
initialised, or the workers would not fork.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

from loadertune.engine.backends.dataloader import DataLoaderBackend
from loadertune.engine.device import cuda_in_use
from loadertune.engine.failures import CUDA_FORK_MARKER, CUDA_FORK_TEXT
from loadertune.engine.harness import OFFLINE
from loadertune.engine.probe import IndexRecorder, ProbedBatch
from loadertune.engine.workload import Workload
from loadertune.records.config import LoaderConfig
from loadertune.records.errors import TrialTimeout

FORK_PROBE_TIMEOUT_S = 30.0  # one batch from one forked worker; a hang is not fork's fault


def workers_fork(config: LoaderConfig) -> bool:
    """Whether ``config``'s workers would start by fork (its own method, or the platform's)."""
    method = (
        config.multiprocessing_context
        or multiprocessing.get_start_method(allow_none=True)
        or multiprocessing.get_all_start_methods()[0]  # the platform's default, left unset
    )
    return bool(config.num_workers) and method == "fork"


def fork_breaks(workload: Workload, timeout_s: float = FORK_PROBE_TIMEOUT_S) -> str | None:
    """Why fork must not be tried here (a forked worker used CUDA), or None: CUDA is not
    initialised, workers would not fork, or a forked worker made its batch (any other error
    is the trials' to explain)."""
    config = LoaderConfig(1)
    if not cuda_in_use() or not workers_fork(config):
        return None
    backend = DataLoaderBackend(workload)
    iterator: Iterator[ProbedBatch] | None = None
    try:
        with OFFLINE.around(), OFFLINE.watchdog(timeout_s):
            iterator = iter(backend.build(config, IndexRecorder([])))
            next(iterator)
    except (TrialTimeout, StopIteration):
        return None
    except Exception as exc:  # noqa: BLE001 - user code may raise anything; only one cause counts
        return f"fork is not tried: {CUDA_FORK_TEXT}" if CUDA_FORK_MARKER in str(exc) else None
    finally:
        backend.shutdown(iterator, kill_first=True)
    return None


FALLBACK_METHODS = ("forkserver", "spawn")  # a fresh interpreter per worker: CUDA-safe


def start_method(workload: Workload, available: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The start method a search gives its workers, and why: ``(None, None)`` where fork
    (or the platform's default) may be tried, else the first of :data:`FALLBACK_METHODS`
    ``available`` and the reason fork is not tried."""
    reason = fork_breaks(workload)
    if reason is None:
        return None, None
    method = next((m for m in FALLBACK_METHODS if m in available), None)
    return method, reason
