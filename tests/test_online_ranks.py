"""``loadertune.DataLoader`` under torchrun (2 local ranks on gloo): every rank runs the same
configs, switched at the same positions on rank 0's word; every sample once, in the sampler's
order, on every rank; uneven epochs under ``Join`` never deadlock; a loader only rank 0 uses
tunes alone; a rank whose data fails stops the job with no process left. And the agreement's
own logic, in one process, with the ranks' messages stood in for."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from loadertune.online.agreed import Agreed, slowest
from loadertune.online.search import Autotune, Space
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import Trial
from test_ranks import LIMIT_S, _assert_none_left, _env, _torchrun

JOB = str(Path(__file__).with_name("online_ranks_job.py"))


def _job(tmp_path: Path, scenario: str) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    cmd = _torchrun(JOB, scenario, str(tmp_path))
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=LIMIT_S, env=_env(tmp_path), check=False
    )
    _assert_none_left(JOB)
    ranks = [tmp_path / f"rank{r}.json" for r in (0, 1)]
    return done, [json.loads(p.read_text()) for p in ranks if p.exists()]


def _assert_each_sample_once_in_order(rank: dict[str, Any]) -> None:
    for epoch in rank["epochs"]:
        assert epoch["seen"] == epoch["expected"]


@pytest.mark.ranks
def test_every_rank_runs_the_configs_rank_0_chose_each_sample_once(tmp_path: Path) -> None:
    done, ranks = _job(tmp_path, "even")
    assert done.returncode == 0, done.stderr
    assert len(ranks) == 2
    for rank in ranks:
        _assert_each_sample_once_in_order(rank)
    stretches = [[e["stretches"] for e in rank["epochs"]] for rank in ranks]
    assert stretches[0] == stretches[1]  # the same configs, switched on the same word
    assert len({label for epoch in stretches[0] for label in epoch}) > 1  # it did search
    assert ranks[0]["pick"] == ranks[1]["pick"] is not None


@pytest.mark.ranks
def test_uneven_epochs_under_join_end_without_a_deadlock(tmp_path: Path) -> None:
    done, ranks = _job(tmp_path, "uneven")
    assert done.returncode == 0, done.stderr
    assert [len(r["epochs"][0]["seen"]) for r in ranks] == [400, 300]
    for rank in ranks:
        _assert_each_sample_once_in_order(rank)
    assert [e["stretches"] for e in ranks[0]["epochs"]] == [
        e["stretches"] for e in ranks[1]["epochs"]
    ]


@pytest.mark.ranks
def test_a_loader_only_rank_0_iterates_tunes_alone_with_a_warning(tmp_path: Path) -> None:
    done, ranks = _job(tmp_path, "rank0")
    assert done.returncode == 0, done.stderr
    assert sorted(ranks[0]["seen"]) == list(range(256))
    assert "this rank tunes alone" in done.stderr


@pytest.mark.ranks
def test_a_rank_whose_data_fails_stops_the_job_and_says_why(tmp_path: Path) -> None:
    done, _ = _job(tmp_path, "broken")
    assert done.returncode != 0
    assert "corrupt record" in done.stderr and "on rank 1" in done.stderr


class _OneRank:
    """Ranks of a job of one, for the agreement's own logic: what is gathered comes back."""

    leader, rank, world_size, local_world_size = True, 0, 1, 1

    def __init__(self) -> None:
        self.meetings = 0

    def gather(self, message: Any) -> list[Any]:
        self.meetings += 1
        return [message]

    def broadcast(self, message: Any = None, wait_s: float | None = None) -> Any:
        return message


def _stretch(config: LoaderConfig, batch_s: float, batches: int) -> Trial:
    trial = Trial(config)
    for i in range(batches):
        trial.request_s.append(i * batch_s)
        trial.ready_s.append(i * batch_s + batch_s * 0.9)
        trial.step_end_s.append((i + 1) * batch_s)
        trial.done_s.append(i * batch_s + batch_s * 0.9)
        trial.worker_id.append(-1)
        trial.n_samples.append(16)
    trial.cpu = [(0.0, 0.0)]
    return trial


def _agreed(batches: int = 100) -> tuple[Agreed, _OneRank]:
    ranks = _OneRank()
    search = Autotune(Space(), batches=batches, epochs=2, usable_cpus=2)
    return Agreed(ranks, search, LoaderConfig()), ranks  # type: ignore[arg-type]


def test_the_ranks_meet_only_at_the_check_ins_rank_0_set() -> None:
    agreed, ranks = _agreed()
    agreed.meet(0, 100)
    assert (agreed.first(0), agreed.next_at, ranks.meetings) == (LoaderConfig(), 0, 1)
    slow = _stretch(LoaderConfig(), 0.01, 1)  # 10 ms batches: the next check-in 25 ahead
    assert agreed.after(slow, 0, 99) is None
    assert (agreed.next_at, ranks.meetings) == (25, 2)
    for position in range(1, 25):
        assert agreed.after(_stretch(LoaderConfig(), 0.01, position + 1), position, 99) is None
    assert ranks.meetings == 2  # nothing said between check-ins


def test_a_check_in_never_falls_where_the_shortest_rank_has_ended() -> None:
    agreed, _ = _agreed()
    agreed.meet(0, 12)
    agreed.after(_stretch(LoaderConfig(), 0.01, 1), 0, 11)
    assert agreed.next_at == 10  # 25 ahead is past the end: the last before it (12 - 2)
    agreed.after(_stretch(LoaderConfig(), 0.01, 11), 10, 1)
    assert agreed.next_at is None


def test_a_config_broken_on_one_rank_moves_every_rank_at_the_next_meeting() -> None:
    agreed, _ = _agreed()
    agreed.meet(0, 100)
    four = LoaderConfig(4, persistent_workers=True)
    assert agreed.search is not None
    agreed.search.running = four
    assert agreed.failed(four, "worker died") == LoaderConfig()  # here, at once
    order = agreed.after(_stretch(LoaderConfig(), 0.01, 3), 0, 97)
    assert order == agreed.search.running and order != four
    assert LoaderConfig(4) in agreed.search.broken


def test_the_jobs_stretch_is_its_slowest_ranks() -> None:
    fast, slow = _stretch(LoaderConfig(), 0.01, 5), _stretch(LoaderConfig(), 0.03, 5)
    assert slowest([fast, slow]) is slow
