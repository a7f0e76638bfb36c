"""Every default the library and the command line share, defined once: the functions' keyword
defaults and the help texts read them from here."""

from __future__ import annotations

BATCH_SIZE = 64  # a bare Dataset has no batch size of its own; 64 is the classic recipe's
BATCH_BUDGET = 200  # batches that stand for an "epoch" of a dataset without __len__
EPOCHS = 1  # epochs the user's job runs (persistent workers start once)
BENCH_WORKERS = (0, 2, 4)  # the classic recipe's counts, what `bench` tries unless told
REPEATS = 3  # interleaved repeats of every config in `bench`
TRIAL_BUDGET_S = 10.0  # seconds a bench trial measures after its first batch
TRIAL_TIMEOUT_S = 60.0  # a trial with no batch for this long fails
TUNE_BUDGET_S = 60.0  # the whole search, trials and diagnosis
STRATEGY = "adaptive"  # tune's search
DEVICE = "auto"  # where the step runs: CUDA once torch has initialised it, else the CPU
DEVICES = ("auto", "cuda", "cpu")  # --device's choices (engine/device.py: what each means)
MEMORY_SHARE = 0.8  # the memory limit unless told: 80% of the memory available at the start
# tune's cap on num_workers unless told: well above the core count, since loaders that wait on
# storage want many workers
MAX_WORKERS_FLOOR = 32
WORKERS_PER_CPU = 8
# `check`, the CI gate: five repeats give a median one slow run cannot move and a spread that
# says how noisy the machine is; the regression rule allows at least 10% (or the noise, if more)
CHECK_REPEATS = 5
CHECK_TOLERANCE = 0.10
MAX_WAIT = 0.20  # the wait rule's limit: TensorFlow's "highly input-bound" threshold
