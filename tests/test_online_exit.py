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
    deadline = time.monotonic() + LIVENESS_S
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(pids) == []
