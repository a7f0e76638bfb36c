"""loadertune: find the fastest PyTorch DataLoader settings for your dataset and training step,
on your machine, by measuring them.

>>> import loadertune
>>> result = loadertune.bench(loadertune.Workload(dataset, step=train_step),
...                           [loadertune.LoaderConfig(num_workers=n) for n in (0, 2, 4)])
>>> DataLoader(dataset, **result.best.loader_kwargs)  # doctest: +SKIP

Or let the loader tune itself while your job trains (``from loadertune import DataLoader``).
"""

from __future__ import annotations

import importlib
from typing import Any

from loadertune.engine.bench import bench, profile
from loadertune.engine.trials import Interrupted, TrialEvent
from loadertune.engine.workload import Workload
from loadertune.records.config import LoaderConfig
from loadertune.records.errors import LoadertuneError, LoadertuneWarning, TrialTimeout, UsageError
from loadertune.records.limits import TrialLimits
from loadertune.records.result import Result, Summary
from loadertune.records.trial import Trial, TrialError
from loadertune.tuning.tune import tune

__version__ = "0.1.0"

# Imported when first used: the online DataLoader subclasses torch's, and `loadertune --help`
# must not pay for importing torch.
_LAZY = {"DataLoader": "loadertune.online.loader"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'loadertune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DataLoader",
    "Interrupted",
    "LoaderConfig",
    "LoadertuneError",
    "LoadertuneWarning",
    "Result",
    "Summary",
    "Trial",
    "TrialError",
    "TrialEvent",
    "TrialLimits",
    "TrialTimeout",
    "UsageError",
    "Workload",
    "__version__",
    "bench",
    "profile",
    "tune",
]
