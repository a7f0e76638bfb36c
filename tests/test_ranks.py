"""loadertune under torchrun: 2 local ranks on gloo, 2 "nodes" on one machine, the library in
a job's own process group; every rank measuring at once, rank 0 deciding and writing, exit codes
agreeing, and no process left on any rank after a failure or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch

from loadertune.engine.ranked import distributed_facts
from loadertune.engine.ranks import Ranks, slowest
from loadertune.engine.workload import Workload
from loadertune.records.config import LoaderConfig
from loadertune.records.result import Result
from loadertune.records.trial import Trial

HERE = Path(__file__).parent
TARGET = str(HERE / "ranks_target.py")
LIMIT_S = 240  # a liveness bound: each launch takes seconds


def _torchrun(*args: str, nproc: int = 2, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *(extra or ("--standalone",)),
        "--nproc-per-node",
        str(nproc),
        *args,
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LOADERTUNE_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}


def _run(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=LIMIT_S, env=_env(tmp_path), check=False
    )
    _assert_none_left(TARGET)
    return done


def _nodes(node_rank: int, port: str) -> tuple[str, ...]:
    """torchrun's options for node ``node_rank`` of 2 on this machine (static rendezvous)."""
    return (
        "--nnodes",
        "2",
        "--node-rank",
        str(node_rank),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        port,
    )


def _assert_none_left(marker: str) -> None:
    """No process (rank or worker) whose command line names ``marker`` is still alive."""
    deadline = time.monotonic() + 10
    while True:
        left = [p for p in _named(marker) if p.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == [], [p.cmdline() for p in left]


def _named(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _bench(tmp_path: Path, target: str, *more: str) -> list[str]:
    json_file = str(tmp_path / "result.json")
    return [
        "-m",
        "loadertune",
        "bench",
        f"{TARGET}:{target}",
        "--step",
        f"{TARGET}:step",
        "--workers",
        "0,2",
        "--batch-size",
        "16",
        "--repeats",
        "1",
        "--trial-budget",
        "0.5",
        "--json",
        json_file,
        *more,
    ]


@pytest.mark.ranks
def test_bench_on_two_local_ranks_measures_every_trial_on_both(tmp_path: Path) -> None:
    done = _run(_torchrun(*_bench(tmp_path, "rows")), tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["distributed"]["world_size"] == 2
    assert doc["distributed"]["local_world_size"] == 2
    assert doc["workload"]["epoch_batches"] == 16  # 512 rows, batch 16, half per rank
    for trial in doc["trials"]:
        assert [r["rank"] for r in trial["ranks"]] == [0, 1]
        slow = max(r["epoch_s"] for r in trial["ranks"])
        assert trial["epoch_s"] == pytest.approx(slow)  # the job goes at its slowest rank
    assert done.stdout.count("Measured on 2 ranks") == 1  # rank 0 alone prints


@pytest.mark.ranks
def test_a_dataloader_that_is_not_distributed_is_kept_with_a_warning(tmp_path: Path) -> None:
    done = _run(_torchrun(*_bench(tmp_path, "loader")), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("not a DistributedSampler") == 1
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["workload"]["epoch_batches"] == 32  # its own sampler: every rank reads all


@pytest.mark.ranks
def test_a_rank_whose_data_fails_fails_the_trial_and_both_exit_alike(tmp_path: Path) -> None:
    done = _run(_torchrun(*_bench(tmp_path, "broken")), tmp_path)
    assert done.returncode == 1, done.stderr  # measured, trials failed: the same on both ranks
    doc = json.loads((tmp_path / "result.json").read_text())
    for trial in doc["trials"]:
        assert trial["status"] != "ok"
        assert "on rank 1" in trial["error"]
        assert [r["status"] == "ok" for r in trial["ranks"]] == [True, False]


@pytest.mark.ranks
def test_a_rank_that_dies_stops_every_rank_and_keeps_what_was_measured(tmp_path: Path) -> None:
    cmd = _bench(tmp_path, "rows")
    cmd[cmd.index("--step") + 1] = f"{TARGET}:dies_on_rank_one"
    done = _run(_torchrun(*cmd), tmp_path)
    assert done.returncode != 0
    assert (tmp_path / "result.json").exists()  # rank 0 saved before the end


@pytest.mark.ranks
def test_ctrl_c_stops_every_rank_and_keeps_what_was_measured(tmp_path: Path) -> None:
    json_file = tmp_path / "result.json"
    cmd = _bench(tmp_path, "rows", "--repeats", "50")
    process = subprocess.Popen(
        _torchrun(*cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
        start_new_session=True,  # its own process group: Ctrl-C reaches every process in it
    )
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline and not _trials(json_file):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=LIMIT_S)
    assert process.returncode != 0
    assert _trials(json_file), stderr
    assert json.loads(json_file.read_text())["interrupted"] is True
    _assert_none_left(TARGET)


def _trials(path: Path) -> list[Any]:
    try:
        return list(json.loads(path.read_text())["trials"])
    except (OSError, ValueError, KeyError):
        return []


@pytest.mark.ranks
def test_tune_under_torchrun_picks_on_both_ranks(tmp_path: Path) -> None:
    json_file = str(tmp_path / "result.json")
    args = ["--no-python", str(Path(sys.executable).with_name("loadertune")), "tune"]
    args += [f"{TARGET}:rows", "--step", f"{TARGET}:step", "--budget", "8", "--json", json_file]
    done = _run(_torchrun(*args), tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(Path(json_file).read_text())
    assert doc["tuning"]["pick"] is not None
    assert doc["distributed"]["cpus_per_local_rank"] >= 1
    assert all(len(t["ranks"]) == 2 for t in doc["trials"])


@pytest.mark.ranks
def test_two_nodes_of_one_rank_each(tmp_path: Path) -> None:
    port = str(29500 + os.getpid() % 2000)
    for k in (0, 1):
        (tmp_path / f"node{k}").mkdir()
    launches = [
        subprocess.Popen(
            _torchrun(
                *_bench(tmp_path / f"node{k}", "rows"),
                nproc=1,
                extra=(
                    "--nnodes",
                    "2",
                    "--node-rank",
                    str(k),
                    "--master-addr",
                    "127.0.0.1",
                    "--master-port",
                    port,
                ),
            ),
            env=_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (0, 1)
    ]
    outcomes = [p.communicate(timeout=LIMIT_S) for p in launches]
    assert [p.returncode for p in launches] == [0, 0], outcomes
    doc = json.loads((tmp_path / "node0" / "result.json").read_text())
    assert doc["distributed"]["world_size"] == 2
    assert doc["distributed"]["nodes"] == 2
    assert not (tmp_path / "node1" / "result.json").exists()  # the second node's rank is quiet
    _assert_none_left(TARGET)


@pytest.mark.ranks
def test_the_library_in_a_jobs_own_process_group_returns_one_result_on_every_rank(
    tmp_path: Path,
) -> None:
    done = _run(_torchrun(TARGET, str(tmp_path)), tmp_path)
    assert done.returncode == 0, done.stderr
    lines = {(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)}
    assert len(lines) == 1  # the same result on both ranks
    trials, _label, world = lines.pop().split()
    assert (trials, world) == ("2", "2")


def _trial(epoch_s: float, ok: bool = True) -> Trial:
    trial = Trial(LoaderConfig(2), epoch_batches=4, complete=True, end_s=epoch_s)
    trial.ready_s = trial.step_end_s = trial.request_s = trial.done_s = [0.1, 0.2, 0.3, 0.4]
    trial.worker_id, trial.n_samples = [0, 1, 0, 1], [8] * 4
    if not ok:
        from loadertune.records.trial import TrialError

        trial.status, trial.error = "failed", TrialError("exception", "corrupt record 7")
    return trial


def test_the_jobs_trial_is_its_slowest_ranks_or_a_failed_ranks() -> None:
    chosen = slowest([_trial(1.0), _trial(1.5), _trial(1.2)])
    assert chosen.epoch_s == 1.5
    assert [r["epoch_s"] for r in chosen.ranks] == [1.0, 1.5, 1.2]
    failed = slowest([_trial(1.0), _trial(0.5, ok=False)])
    assert failed.error is not None and failed.ranks[1]["status"] == "failed"


def test_a_result_keeps_its_ranks_through_its_document(tmp_path: Path) -> None:
    from loadertune.analysis.document import save
    from loadertune.engine.bench import new_result

    workload = Workload(torch.utils.data.TensorDataset(torch.zeros(64, 2)), batch_size=8)
    ranks = Ranks(0, 4, 2, group=None)
    result = new_result(workload, {}, None, ranks)
    result.trials.append(slowest([_trial(1.0), _trial(1.1)]))
    save(result, tmp_path / "r.json")
    back = Result.load(tmp_path / "r.json")
    assert back.distributed == distributed_facts(ranks, result.usable_cpus)
    assert back.distributed is not None and back.distributed["nodes"] == 2
    assert back.trials[0].ranks == result.trials[0].ranks
    assert back.cpus_per_rank == max((result.usable_cpus or 1) // 2, 1)


def test_a_dataset_is_sharded_as_a_ddp_job_shards_it() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(100).float())
    parts = []
    for rank in (0, 1):
        workload = Workload(data, batch_size=10, shuffle=False)
        assert workload.distribute(rank, 2) is None
        assert workload.epoch_batches() == 5
        loader = workload.loader(LoaderConfig())
        parts.append({int(x) for (batch,) in loader for x in batch})
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == set(range(100))


def test_show_says_the_ranks_and_every_ranks_figures_at_the_pick() -> None:
    from loadertune.report.ranks import rank_lines

    workload = Workload(torch.utils.data.TensorDataset(torch.zeros(64, 2)), batch_size=8)
    result = new_result_with_ranks(workload)
    result.trials.append(slowest([_trial(1.0), _trial(1.25)]))
    first, per_rank = rank_lines(result)
    assert first.startswith("Measured on 4 ranks (2 nodes x 2 local, gloo)")
    assert "rank 0 1 s (data wait" in per_rank and "rank 1 1.25 s" in per_rank
    assert rank_lines(Result(machine={}, workload={})) == []


def new_result_with_ranks(workload: Workload) -> Result:
    from loadertune.engine.bench import new_result

    return new_result(workload, {}, None, Ranks(0, 4, 2, group=None))
