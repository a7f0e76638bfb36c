"""Fork after CUDA: one forked worker is asked for one batch where CUDA is initialised; where it
breaks, the search starts its workers with forkserver and says why; where it works, or CUDA is
not in use, fork stays."""

from __future__ import annotations

import pytest
import torch

from fakes import summaries
from loadertune import LoaderConfig, Result, Workload
from loadertune.engine import forked
from loadertune.records.trial import Trial
from loadertune.tuning.adaptive import Adaptive
from loadertune.tuning.history import History
from loadertune.tuning.tune import default_strategy
from sample_data import Rows

FORK_ERROR = (
    "Cannot re-initialize CUDA in forked subprocess. To use CUDA with multiprocessing, you must "
    "use the 'spawn' start method"
)


class TouchesCuda(Rows):
    """A dataset that puts its samples on the GPU: what breaks in a forked worker."""

    def __getitem__(self, index: int) -> torch.Tensor:
        raise RuntimeError(FORK_ERROR)


@pytest.mark.workers
@pytest.mark.skipif(not forked.workers_fork(LoaderConfig(1)), reason="workers do not fork here")
def test_a_dataset_that_uses_cuda_in_a_forked_worker_keeps_fork_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forked, "cuda_in_use", lambda: True)
    method, why = forked.start_method(Workload(TouchesCuda(16), batch_size=4), ("fork", "spawn"))
    assert method == "spawn" and why is not None and why.startswith("fork is not tried")
    assert "forked workers cannot use CUDA" in why
    assert forked.start_method(Workload(Rows(16), batch_size=4), ("fork",)) == (None, None)


def test_without_cuda_in_use_nothing_is_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forked, "DataLoaderBackend", None)  # would fail if it were built
    assert forked.fork_breaks(Workload(TouchesCuda(16), batch_size=4)) is None


def test_the_search_starts_its_workers_with_the_method_chosen_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import loadertune.tuning.tune as tune_module

    monkeypatch.setattr(
        tune_module,
        "start_method",
        lambda workload, available: ("forkserver", "fork is not tried: x"),
    )
    machine = {"cpus": {"usable": 2}, "start_methods": ["fork", "forkserver"]}
    result = Result(machine=machine, workload={})
    strategy = default_strategy(Workload(Rows(16), batch_size=4), result, None)
    assert strategy.context == "forkserver"
    assert result.settings["start_method"] == {"fork": "fork is not tried: x", "used": "forkserver"}


def test_an_adaptive_search_with_a_start_method_uses_it_for_every_worker_config() -> None:
    strategy = Adaptive(usable_cpus=2, max_workers=8, context="forkserver", cuda=True)
    trials: list[Trial] = []
    from fakes import Measured

    while (config := strategy.propose(History(summaries(*trials)))) is not None:
        n = config.num_workers
        trials.append(Measured(config, 1.0 + abs(n - 4) * 0.2, 0.5 if n < 4 else 0.01))
        assert len(trials) < 40
    tried = [t.config for t in trials]
    assert all(c.multiprocessing_context == "forkserver" for c in tried if c.num_workers)
    assert LoaderConfig(4, multiprocessing_context="forkserver") in tried  # the climb went on
    assert LoaderConfig(4, pin_memory=True, multiprocessing_context="forkserver") in tried
