"""loadertune: find the fastest PyTorch DataLoader settings for your dataset and training step,
on your machine, by measuring them.

>>> import loadertune
>>> result = loadertune.bench(loadertune.Workload(dataset, step=train_step),
...                           [loadertune.LoaderConfig(num_workers=n) for n in (0, 2, 4)])
>>> DataLoader(dataset, **result.best.loader_kwargs)  # doctest: +SKIP
"""

from __future__ import annotations

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

__all__ = [
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
