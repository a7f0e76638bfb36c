"""Whether a trial did the work its loader's length promised: batch counts checked against the
epoch's length, a stream that ended early, batch sizes from the sampler's record."""

from __future__ import annotations

from loadertune.engine.probe import IndexRecorder
from loadertune.engine.workload import Workload
from loadertune.records.trial import Trial

STREAM_ENDED = "the stream ended after"


def check_batch_count(trial: Trial, workload: Workload, expected: int | None, budget: int) -> None:
    """Warn when a whole epoch delivered another number of batches than its length says: an
    IterableDataset that does not split its work across workers repeats it in each, and one
    whose ``__len__`` is wrong ends early (the configs then do unequal work). ``expected`` is
    the loader's length (None without one), ``budget`` the batches the trial planned."""
    if not trial.complete:
        return
    if expected is not None and trial.batches != expected and workload.is_iterable:
        why = (
            "each worker repeats the whole stream: split it with get_worker_info() in __iter__"
            if trial.batches > expected and trial.config.num_workers > 1
            else "the dataset's __len__ does not match what it yields"
        )
        trial.warnings.append(
            f"the epoch delivered {trial.batches} batches where the loader's length says "
            f"{expected}: {why}"
        )
    elif expected is None and trial.batches < budget:
        trial.warnings.append(stream_note(trial.batches, budget))


def stream_note(batches: int, budget: int, *, every_config: bool = False) -> str:
    """What a stream that ended before the batch budget means for the figures: of one trial,
    or (``every_config``) of a run that measured every config for the stream's length."""
    then = (
        "every config is measured for those batches (those cut short are estimated for them)"
        if every_config
        else "the figures are for that shorter run"
    )
    return f"{STREAM_ENDED} {batches} batches, before the --batches budget of {budget}: {then}"


def count_samples_from_indices(trial: Trial, recorder: IndexRecorder) -> None:
    """Exact batch sizes from the sampler, where batches arrive in the order handed out."""
    if not trial.config.in_order or len(recorder.handed) < trial.batches:
        return
    for k in range(trial.batches):
        indices = recorder.indices_of(k)
        if indices is not None and not trial.n_samples[k]:
            trial.n_samples[k] = len(indices)
