from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fakes
from loadertune import Result
from loadertune.analysis.document import document, save


def test_best_is_the_lowest_median_and_its_kwargs_build_a_loader() -> None:
    result = fakes.result(fakes.trial(0, 0.01), fakes.trial(2, 0.005), fakes.trial(4, 0.02))
    assert result.best is not None and result.best.config.num_workers == 2
    kwargs = result.best.loader_kwargs
    assert kwargs == {
        "batch_size": 8,
        "shuffle": True,
        "drop_last": False,
        "num_workers": 2,
        "persistent_workers": False,
        "pin_memory": False,
        "prefetch_factor": 2,
    }
    loader = DataLoader(TensorDataset(torch.zeros(16)), **kwargs)
    assert loader.batch_size == 8 and loader.num_workers == 2


def test_medians_and_spread_over_repeats() -> None:
    result = fakes.result(*(fakes.trial(0, s, repeat=i) for i, s in enumerate((0.01, 0.02, 0.03))))
    (summary,) = result.summaries()
    epoch = summary.epoch_s
    assert epoch is not None and epoch.n == 3
    assert epoch.low < epoch.median < epoch.high


def test_failed_configs_are_kept_but_never_best() -> None:
    result = fakes.result(fakes.failed(0), fakes.trial(2, 0.05))
    assert result.best is not None and result.best.config.num_workers == 2
    failed = result.summaries()[0]
    assert failed.failed and failed.errors == ["ValueError: bad row 3 (index 3, batch 0)"]


def test_json_round_trip_keeps_every_figure(tmp_path: Path) -> None:
    result = fakes.result(fakes.trial(0, 0.01), fakes.failed(2), fakes.trial(4, 0.004))
    path = tmp_path / "out" / "result.json"
    save(result, path)
    doc = json.loads(path.read_text())
    assert doc["schema"] == "loadertune.result" and doc["version"] == 1
    assert doc["best"]["loader_kwargs"]["num_workers"] == 4
    again = Result.load(path)
    assert document(again) == document(result) == doc
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temporary file left


def test_an_interrupted_write_leaves_the_last_whole_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "result.json"
    save(fakes.result(fakes.trial(0, 0.01)), path)

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", explode)
    with pytest.raises(OSError, match="disk full"):
        save(fakes.result(fakes.trial(0, 0.01), fakes.trial(2, 0.01)), path)
    assert len(Result.load(path).trials) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"schema": "other"}, "not a loadertune result"),
        ({"schema": "loadertune.result", "version": 99}, "version 99"),
    ],
)
def test_foreign_documents_are_refused(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Result.from_dict(doc)


def test_the_document_is_an_ordinary_readable_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        save(fakes.result(fakes.trial(0, 0.01)), tmp_path / "r.json")
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
