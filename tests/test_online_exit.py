"""Ctrl-C and interpreter exit in the middle of an online loader's epoch leave no worker behind
(run as a user's script would, in its own interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

SCRIPT = """
import os, signal, sys, time
import psutil, torch
from torch.utils.data import Dataset
import loadertune

class Slow(Dataset):
    def __len__(self):
        return 400
    def __getitem__(self, i):
        time.sleep(0.002)
        return torch.tensor([i])

loader = loadertune.DataLoader(Slow(), batch_size=4, num_workers=2, epochs=3)
for k, batch in enumerate(loader):
    if k == 10:
        print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
        if sys.argv[1] == "interrupt":
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        break
"""
LIVENESS_S = 20  # a bound so a broken test fails instead of hanging; not a timing claim


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.mark.workers
@pytest.mark.parametrize("how", ["exit", "interrupt"])
def test_no_worker_outlives_the_users_script(tmp_path: Path, how: str) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env_cache = {"LOADERTUNE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, str(script), how],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env_cache},
        check=False,
    )
    pids = [int(p) for p in done.stdout.split()]
    assert pids, done.stderr
    if how == "interrupt":
        assert "KeyboardInterrupt" in done.stderr
    assert "Exception ignored" not in done.stderr  # no finalizer failing as modules go
    deadline = time.monotonic() + LIVENESS_S
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(pids) == []


CYCLE = """
import gc, sys, time
import psutil, torch
import torch.utils.data._utils as torch_utils
from torch.utils.data import Dataset
import loadertune

torch_utils.MP_STATUS_CHECK_INTERVAL = 600.0  # torch's wait per worker: a missed stop hangs

class Bad(Dataset):
    def __len__(self):
        return 2000
    def __getitem__(self, i):
        if i == 1500:
            raise ValueError("corrupt record 1500")
        time.sleep(0.002)
        return torch.tensor([i])

loader = loadertune.DataLoader(Bad(), batch_size=16, epochs=3, cache=False)
try:
    for batch in loader:
        pass
except ValueError:
    pass  # the exception's traceback holds the loop's frames: loader and iterator in a cycle
print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
del loader
gc.collect()
print("collected", flush=True)
time.sleep(60)  # the workers must be gone while this process still lives
"""


@pytest.mark.workers
def test_a_loader_collected_in_a_cycle_after_the_users_exception_stops_its_workers(
    tmp_path: Path,
) -> None:
    script = tmp_path / "cycle.py"
    script.write_text(CYCLE)
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    ) as job:
        try:
            assert job.stdout is not None
            pids = [int(p) for p in job.stdout.readline().split()]
            assert pids  # it searched with workers before the dataset raised
            collected = _line_within(job, LIVENESS_S)
            assert collected == "collected\n"
            assert _alive(pids) == []
        finally:
            job.kill()


def _line_within(job: subprocess.Popen[str], seconds: float) -> str:
    """The job's next line, or "" if none came within ``seconds`` (a liveness bound: the
    orderly stop, missed, would wait 600 s on each worker)."""
    import selectors

    assert job.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(job.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=seconds):
            return ""
    return job.stdout.readline()
