"""The Trial's JSON: new fields travel, documents written before them still load."""

from __future__ import annotations

import json

import fakes
from loadertune import Trial


def test_memory_watch_batch_bytes_and_warnings_round_trip() -> None:
    trial = fakes.trial(2, 0.01)
    trial.memory_watch = [(0.1, 0, 300 * 2**20), (0.2, 5, 310 * 2**20)]
    trial.batch_bytes = 2**20
    trial.warnings = ["batches in flight need ~64 MiB ...: use fewer workers ..."]
    doc = json.loads(json.dumps(trial.to_dict()))
    assert doc["raw"]["batch_bytes"] == 2**20 and doc["warnings"] == trial.warnings
    again = Trial.from_dict(doc)
    assert again.memory_watch == trial.memory_watch
    assert (again.batch_bytes, again.warnings) == (trial.batch_bytes, trial.warnings)


def test_a_document_without_the_new_fields_still_loads() -> None:
    doc = json.loads(json.dumps(fakes.trial(2, 0.01).to_dict()))
    for key in ("memory_watch", "batch_bytes"):
        del doc["raw"][key]
    del doc["warnings"]
    old = Trial.from_dict(doc)
    assert (old.memory_watch, old.batch_bytes, old.warnings) == ([], None, [])
    assert old.epoch_s == fakes.trial(2, 0.01).epoch_s
