"""Does `tune` reach a hand-timed grid's best on data built with real data libraries?

Six workloads, each built locally in a temporary folder (nothing is downloaded) and removed at
the end, each with a small training step so that loading matters:

- ``hf-tabular``: Hugging Face ``datasets``, numeric columns, ``save_to_disk`` then
  ``load_from_disk``, torch format; loadertune gets the dataset (map-style).
- ``hf-image``: ``datasets`` with an ``Image()`` column of PNG bytes, decoded on access, a numpy
  transform to float tensors; loadertune gets the dataset.
- ``webdataset``: 16 ``.tar`` shards of JPEG + class read by
  ``wds.WebDataset(...).decode(...).to_tuple(...)``; loadertune gets the stream (no ``__len__``,
  and fewer batches than its default budget of 200).
- ``stateful``: a torchdata ``StatefulDataLoader`` over pure-Python tokenising; loadertune gets
  the DataLoader.
- ``npy-files``: one ``.npy`` file per sample, ``np.load`` in ``__getitem__``.
- ``pillow-files``: one JPEG file per sample, decoded with Pillow.

Per workload and run: a warm-up epoch, then whole epochs timed by hand (the classic recipe: a
fresh loader per epoch, ``for batch in loader: step(batch)``) at every count of the grid, in
interleaved rounds that rotate their order; ``loadertune.tune`` runs between the first and
second rounds; then the pick and the grid's best meet head to head on fresh alternating epochs.
The grid's loaders are built here by hand, the way the user of each library builds them, not
by loadertune, so the reference does not depend on the code under test.

    python benchmarks/real_libs.py                    # 3 runs, rewrites its RESULTS.md section
    python benchmarks/real_libs.py --quick            # small data, 1 run, prints only
    python benchmarks/real_libs.py --only hf-image,stateful --runs 1   # prints only
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from epoch_accuracy import engine_fingerprint
from loadertune import LoaderConfig, Workload, tune
from results_file import RESULTS_PATH, provenance, write_section
from tune_vs_grid import FRESH_PAIRS, TARGET_EPOCH_RATIO, log

SECTION = "## Real libraries: tune vs a hand-timed grid"
GRID = (0, 1, 2, 3, 4, 6, 8, 12, 16)
ROUNDS = 3
TUNE_SHARE = 0.28  # tune's budget: this share of the grid round measured just before it ...
MIN_BUDGET_S = 4.0  # ... and never less: below it tune has no room for its anchors
QUICK_SCALE = 4  # --quick divides every dataset's size by this
QUICK_PAIRS = 3  # head-to-head epochs a side in --quick (a smoke test, not a measurement)
SHARDS = 16  # webdataset gives each worker whole shards, and one left with none raises
# (its empty_check): 16 serve every count of the grid; a trial of tune's above 16 fails
IMAGE_SIDE = 64  # hf-image's PNGs
WDS_SIDE = 96  # webdataset's JPEGs
FILE_SIDE = 128  # pillow-files' JPEGs
NPY_SHAPE = (3, 32, 32)
TABULAR_COLUMNS = 32
CLASSES = 10
TEXT_WORDS = 600  # words per text in the tokenising dataset
TOKENS = 128  # tokens kept per text (truncated or padded)
VOCAB = 4096
STEP_THREADS = 1  # torch's intra-op threads in the main process (--threads; 0: torch's default).
# With the default 2 here, a conv step's threads spin-wait for cores that the workers (or any
# other process) hold: pillow-files' 1000-sample epoch at w=0 took 0.4 s alone and 7-8 s beside
# a test run, so the grid would time thread contention rather than loading.
LIBRARIES = ("torch", "datasets", "webdataset", "torchdata", "numpy", "pillow", "pyarrow")


# ---- training steps: tiny models, forward + backward + SGD, so loading matters ----------------


class TrainStep:
    """Forward, cross-entropy, backward, SGD step on ``model``; ``unpack`` gives (inputs,
    labels) from a batch."""

    def __init__(self, model: nn.Module, unpack: Callable[[Any], tuple[Any, Any]]) -> None:
        self.model = model
        self.unpack = unpack
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def __call__(self, batch: Any) -> float:
        inputs, labels = self.unpack(batch)
        self.optimizer.zero_grad()
        loss = nn.functional.cross_entropy(self.model(inputs), labels)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(8 * 16, CLASSES),
    )


def pair(batch: Any) -> tuple[Any, Any]:
    return batch[0], batch[1]


def columns_and_label(batch: dict[str, torch.Tensor]) -> tuple[Any, Any]:
    features = torch.stack([batch[f"f{c}"] for c in range(TABULAR_COLUMNS)], dim=1)
    return features, batch["label"]


def pixels_and_label(batch: dict[str, torch.Tensor]) -> tuple[Any, Any]:
    return batch["pixels"], batch["label"]


# ---- datasets of our own (module level: workers can pickle them) -----------------------------


def chw_float(image: Any) -> torch.Tensor:
    """A PIL image as a float32 CHW tensor in [0, 1], through numpy."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


class ImageToTensor:
    """``datasets`` transform: the decoded PIL images of a batch -> float tensors."""

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"pixels": [chw_float(i) for i in batch["image"]], "label": batch["label"]}


class NpyFiles(Dataset[tuple[torch.Tensor, int]]):
    """One ``.npy`` file per sample, read with ``np.load`` on every access."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.load(self.paths[index])), index % CLASSES


class JpegFiles(Dataset[tuple[torch.Tensor, int]]):
    """One JPEG file per sample, opened and decoded with Pillow on every access."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            return chw_float(image), index % CLASSES


class Tokenised(Dataset[tuple[torch.Tensor, int]]):
    """Texts tokenised in pure Python on access: normalise, split, look up, hash the rest."""

    def __init__(self, texts: list[str], vocab: dict[str, int]) -> None:
        self.texts = texts
        self.vocab = vocab
        self.table = str.maketrans(dict.fromkeys(",.;:!?", " "))

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        words = self.texts[index].lower().translate(self.table).split()
        ids: list[int] = []
        for word in words:
            known = self.vocab.get(word)
            ids.extend([known] if known else self.pieces(word))
        ids = (ids + [0] * TOKENS)[:TOKENS]
        return torch.tensor(ids, dtype=torch.int64), ids[0] % 2

    @staticmethod
    def pieces(word: str) -> list[int]:
        """An unknown word as hashed 3-letter pieces (a poor man's subword split)."""
        return [
            1 + zlib.crc32(word[j : j + 3].encode()) % (VOCAB - 1) for j in range(0, len(word), 3)
        ]


class BagOfWords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.EmbeddingBag(VOCAB, 32)
        self.head = nn.Linear(32, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids))


# ---- what each workload builds ---------------------------------------------------------------


@dataclass
class LoaderRecipe:
    """The grid's loader, built by hand each epoch as the library's user would build it."""

    dataset: Any
    batch_size: int
    shuffle: bool = True
    loader_cls: type[DataLoader[Any]] = DataLoader

    def __call__(self, config: LoaderConfig) -> Iterable[Any]:
        return self.loader_cls(
            self.dataset, batch_size=self.batch_size, shuffle=self.shuffle, **config.to_kwargs()
        )


@dataclass
class Built:
    """A workload on disk: what loadertune gets, the grid's loader, the step."""

    target: Any  # a dataset or a DataLoader, handed to loadertune.Workload
    loader: LoaderRecipe
    step: TrainStep
    about: str  # sizes, for the notes under the table

    @property
    def workload_batch_size(self) -> int | None:
        """A DataLoader target keeps its own batch size; a dataset gets the grid's."""
        return None if isinstance(self.target, DataLoader) else self.loader.batch_size


def random_image(rng: np.random.Generator, side: int) -> Any:
    """A smooth random picture with some noise (compresses like a photo, not like static)."""
    from PIL import Image

    coarse = rng.integers(0, 256, size=(side // 8, side // 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse, "RGB").resize((side, side), Image.Resampling.BILINEAR)
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=(side, side, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def encoded(image: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def build_hf_tabular(folder: Path, samples: int) -> Built:
    import datasets

    rng = np.random.default_rng(0)
    columns = {
        f"f{c}": rng.standard_normal(samples, dtype=np.float32) for c in range(TABULAR_COLUMNS)
    }
    columns["label"] = rng.integers(0, CLASSES, samples)
    datasets.Dataset.from_dict(columns).save_to_disk(str(folder / "tabular"))
    dataset = datasets.load_from_disk(str(folder / "tabular")).with_format("torch")
    model = nn.Sequential(nn.Linear(TABULAR_COLUMNS, 64), nn.ReLU(), nn.Linear(64, CLASSES))
    step = TrainStep(model, columns_and_label)
    about = f"{samples} rows x {TABULAR_COLUMNS} float32 columns + label, batch 64"
    return Built(dataset, LoaderRecipe(dataset, 64), step, about)


def build_hf_image(folder: Path, samples: int) -> Built:
    import datasets

    rng = np.random.default_rng(1)
    images = [
        {"bytes": encoded(random_image(rng, IMAGE_SIDE), "PNG"), "path": None}
        for _ in range(samples)
    ]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=CLASSES)}
    )
    labels = rng.integers(0, CLASSES, samples).tolist()
    table = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    table.save_to_disk(str(folder / "images"))
    dataset = datasets.load_from_disk(str(folder / "images")).with_transform(ImageToTensor())
    step = TrainStep(conv_net(), pixels_and_label)
    about = f"{samples} PNGs {IMAGE_SIDE}x{IMAGE_SIDE} in an Image() column, batch 32"
    return Built(dataset, LoaderRecipe(dataset, 32), step, about)


def build_webdataset(folder: Path, samples: int) -> Built:
    import webdataset as wds

    rng = np.random.default_rng(2)
    urls = [str(folder / f"shard-{s:02d}.tar") for s in range(SHARDS)]
    per_shard = samples // SHARDS // 32 * 32  # whole batches: every count sees as many
    for s, url in enumerate(urls):
        with wds.TarWriter(url) as sink:
            for k in range(per_shard):
                jpeg = encoded(random_image(rng, WDS_SIDE), "JPEG")
                sink.write({"__key__": f"{s:02d}{k:05d}", "jpg": jpeg, "cls": int(k % CLASSES)})
    stream = wds.WebDataset(urls, shardshuffle=False).decode("torchrgb").to_tuple("jpg", "cls")
    step = TrainStep(conv_net(), pair)
    about = (
        f"{SHARDS} shards x {per_shard} JPEGs {WDS_SIDE}x{WDS_SIDE}, batch 32 per worker "
        f"({SHARDS * per_shard // 32} batches at any count: a shard holds whole batches)"
    )
    return Built(stream, LoaderRecipe(stream, 32, shuffle=False), step, about)


def build_stateful(folder: Path, samples: int) -> Built:
    from torchdata.stateful_dataloader import StatefulDataLoader

    del folder  # the texts live in memory: the work is tokenising them
    rng = np.random.default_rng(3)
    words = [f"Word{w}" for w in range(2 * VOCAB)]
    vocab = {w.lower(): i + 1 for i, w in enumerate(words[: VOCAB - 1])}
    picks = rng.integers(0, len(words), size=(samples, TEXT_WORDS))
    texts = [", ".join(words[i] for i in row) + "." for row in picks]
    dataset = Tokenised(texts, vocab)
    recipe = LoaderRecipe(dataset, 32, loader_cls=StatefulDataLoader)
    target = StatefulDataLoader(dataset, batch_size=32, shuffle=True)
    step = TrainStep(BagOfWords(), pair)
    about = f"{samples} texts x {TEXT_WORDS} words tokenised in Python, batch 32"
    return Built(target, recipe, step, about)


def build_npy_files(folder: Path, samples: int) -> Built:
    rng = np.random.default_rng(4)
    paths = [str(folder / f"{i:06d}.npy") for i in range(samples)]
    for path in paths:
        np.save(path, rng.standard_normal(NPY_SHAPE, dtype=np.float32))
    dataset = NpyFiles(paths)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(NPY_SHAPE)), CLASSES))
    about = f"{samples} .npy files of {NPY_SHAPE} float32, batch 64"
    return Built(dataset, LoaderRecipe(dataset, 64), TrainStep(model, pair), about)


def build_pillow_files(folder: Path, samples: int) -> Built:
    rng = np.random.default_rng(5)
    paths = [str(folder / f"{i:06d}.jpg") for i in range(samples)]
    for path in paths:
        random_image(rng, FILE_SIDE).save(path, "JPEG", quality=90)
    dataset = JpegFiles(paths)
    about = f"{samples} JPEG files {FILE_SIDE}x{FILE_SIDE}, batch 32"
    return Built(dataset, LoaderRecipe(dataset, 32), TrainStep(conv_net(), pair), about)


@dataclass(frozen=True)
class Spec:
    name: str
    build: Callable[[Path, int], Built]
    samples: int  # full size: an epoch at the best count takes about 0.5-2 s on 2 cores


SPECS = (
    Spec("hf-tabular", build_hf_tabular, 6000),  # fetched a batch at a time (__getitems__)
    Spec("hf-image", build_hf_image, 4000),
    Spec("webdataset", build_webdataset, 4096),
    Spec("stateful", build_stateful, 3200),  # ~0.36 ms a text
    Spec("npy-files", build_npy_files, 16000),  # ~0.04 ms a file
    Spec("pillow-files", build_pillow_files, 4000),
)


# ---- one run of one workload: grid rounds, tune between the first two, head to head -----------


@dataclass
class TuneOutcome:
    """What one ``tune`` call gave, or the error it raised."""

    budget_s: float
    wall_s: float = 0.0
    pick: LoaderConfig | None = None
    estimate_s: float | None = None  # tune's own epoch figure for its pick
    trials: int = 0
    failed: list[str] = field(default_factory=list)  # "w=24: message" per failed trial
    warnings: list[str] = field(default_factory=list)
    stopped_by_budget: bool = False
    error: str | None = None


@dataclass
class Outcome:
    name: str
    epochs: dict[LoaderConfig, list[float]] = field(default_factory=dict)  # the grid's rounds
    fresh: dict[LoaderConfig, list[float]] = field(default_factory=dict)  # the head-to-head
    failures: dict[LoaderConfig, str] = field(default_factory=dict)  # hand-timed epochs that raised
    round_s: list[float] = field(default_factory=list)
    tuned: TuneOutcome | None = None
    error: str | None = None  # the workload itself failed (warm-up or build)

    def median(self, config: LoaderConfig) -> float:
        return statistics.median(self.epochs[config])

    def grid_best(self) -> LoaderConfig | None:
        grid = [LoaderConfig(n) for n in GRID]
        return min((c for c in grid if c in self.epochs), key=self.median, default=None)

    @property
    def pick(self) -> LoaderConfig | None:
        return self.tuned.pick if self.tuned else None

    def fresh_ratio(self) -> float | None:
        """The pick over the grid's best on fresh alternating epochs; 1 when they are one."""
        best, pick = self.grid_best(), self.pick
        if pick is None or best is None:
            return None
        if pick == best:
            return 1.0
        if not self.fresh.get(pick) or not self.fresh.get(best):
            return None
        return statistics.median(self.fresh[pick]) / statistics.median(self.fresh[best])


def epoch_s(built: Built, config: LoaderConfig) -> float:
    """One whole epoch, the classic recipe: a fresh loader, every batch through the step."""
    loader = built.loader(config)
    gc.collect()  # as tune does before a trial: no collection falls due mid-fork
    start = time.perf_counter()
    for batch in loader:
        built.step(batch)
    return time.perf_counter() - start


def timed(
    outcome: Outcome, built: Built, config: LoaderConfig, into: dict[LoaderConfig, list[float]]
) -> float:
    """One epoch, appended to ``into``; a config whose epoch raises is noted, costs 0 s and is
    not timed again."""
    if config in outcome.failures:
        return 0.0
    try:
        seconds = epoch_s(built, config)
    except Exception as exc:
        outcome.failures[config] = one_line(exc)
        log(f"  {outcome.name}: {config.label():>14} FAILED {one_line(exc)}")
        return 0.0
    into.setdefault(config, []).append(seconds)
    log(f"  {outcome.name}: {config.label():>14} {seconds:7.3f} s")
    return seconds


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def run_workload(name: str, built: Built, rounds: int, pairs: int) -> Outcome:
    outcome = Outcome(name)
    try:
        epoch_s(built, LoaderConfig())  # warm-up, uncounted: caches, imports, page cache
    except Exception as exc:
        outcome.error = f"warm-up failed: {one_line(exc)}"
        log(f"  {name}: {outcome.error}")
        return outcome
    grid = [LoaderConfig(n) for n in GRID]
    for r in range(rounds):
        order = grid[r % len(grid) :] + grid[: r % len(grid)]
        outcome.round_s.append(sum(timed(outcome, built, c, outcome.epochs) for c in order))
        if r == 0:
            budget_s = max(MIN_BUDGET_S, TUNE_SHARE * outcome.round_s[0])
            outcome.tuned = tune_once(name, built, budget_s)
    head_to_head(outcome, built, pairs)
    return outcome


def head_to_head(outcome: Outcome, built: Built, pairs: int) -> None:
    """Fresh epochs of the pick and the grid's best, alternating which goes first: the grid's
    best is the lowest of many noisy medians, so its own epochs flatter it (winner's curse)."""
    best, pick = outcome.grid_best(), outcome.pick
    if pick is None or best is None or pick == best:
        return
    for k in range(pairs):
        for config in (pick, best) if k % 2 == 0 else (best, pick):
            timed(outcome, built, config, outcome.fresh)


def tune_once(name: str, built: Built, budget_s: float) -> TuneOutcome:
    """``loadertune.tune`` with default settings; an exception is recorded, never raised."""
    tuned = TuneOutcome(budget_s)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        try:
            workload = Workload(
                built.target, step=built.step, batch_size=built.workload_batch_size, name=name
            )
            read_result(tuned, tune(workload, budget_s=budget_s))
        except Exception as exc:
            tuned.error = one_line(exc)
            log(f"  {name}: tune FAILED\n{traceback.format_exc()}")
    tuned.wall_s = time.perf_counter() - start
    tuned.warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    for message in tuned.warnings:
        log(f"  {name}: tune warned {message}")
    picked = tuned.pick.label() if tuned.pick else None
    log(f"  {name}: tune picked {picked} in {tuned.wall_s:.1f} s of {budget_s:.1f} s")
    return tuned


def read_result(tuned: TuneOutcome, result: Any) -> None:
    """The few figures we report from a Result (read defensively: its API is moving)."""
    best = result.best
    tuned.pick = best.config if best else None
    spread = getattr(best, "epoch_s", None) if best else None
    tuned.estimate_s = getattr(spread, "median", None)
    tuned.trials = len(result.trials)
    tuned.failed = [f"{t.config.label()}: {t.error}" for t in result.failed_trials]
    tuned.stopped_by_budget = bool((result.tuning or {}).get("stopped_by_budget"))


@dataclass(frozen=True)
class Plan:
    """How much to measure: runs, grid rounds, head-to-head epochs a side, data divisor."""

    runs: int
    rounds: int
    pairs: int
    scale: int
    threads: int  # torch.get_num_threads() in the main process during the measurements
    load_before: tuple[float, ...]  # the load average when the benchmark started


# ---- the report -------------------------------------------------------------------------------


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def spread(values: list[float]) -> str:
    """Half the range over the median, as ``±x%`` (blank for a single value)."""
    if len(values) < 2:
        return ""
    return f" ±{(max(values) - min(values)) / statistics.median(values) * 50:.0f}%"


def grid_noise(outcome: Outcome) -> str:
    """Half the relative range of a grid config's epochs, median over the grid."""
    halves = [
        (max(v) - min(v)) / statistics.median(v) / 2 for v in outcome.epochs.values() if len(v) > 1
    ]
    return f"{statistics.median(halves):.0%}" if halves else "-"


def pick_cells(outcome: Outcome, best: LoaderConfig) -> tuple[str, str]:
    """The pick with its median epoch, and its ratio to the grid's best on the grid's epochs."""
    pick = outcome.pick
    if pick is None:
        return "no pick", "-"
    on_grid = outcome.epochs.get(pick)
    epochs = on_grid or outcome.fresh.get(pick)
    if not epochs:
        return f"{pick.label()} (not timed)", "-"
    cell = f"{pick.label()} {statistics.median(epochs):.3f} s{spread(epochs)}"
    if not on_grid:
        return cell + " (fresh only)", "off the grid"
    return cell, f"**{statistics.median(on_grid) / outcome.median(best):.3f}**"


def fresh_cell(outcome: Outcome) -> str:
    ratio, pick = outcome.fresh_ratio(), outcome.pick
    if ratio is None or pick is None:
        return "-"
    if pick == outcome.grid_best():
        return "same config"
    return f"**{ratio:.3f}** ({len(outcome.fresh[pick])} each)"


def tune_cells(outcome: Outcome) -> tuple[str, str, str]:
    """tune's wall of its budget, that over one grid round, and its own figure for the pick."""
    tuned = outcome.tuned
    if tuned is None:
        return "-", "-", "-"
    cut = ", budget-cut" if tuned.stopped_by_budget else ""
    wall = f"{tuned.wall_s:.1f} s of {tuned.budget_s:.1f} s ({tuned.trials} trials{cut})"
    share = f"{tuned.wall_s / outcome.round_s[0]:.2f}" if outcome.round_s else "-"
    estimate = f"{tuned.estimate_s:.3f} s" if tuned.estimate_s is not None else "-"
    return wall, share, estimate


def notes(outcome: Outcome) -> str:
    """Errors and warnings, shortened to fit a table cell."""
    tuned = outcome.tuned
    parts = [f"hand-timed {c.label()} raised {e}" for c, e in outcome.failures.items()]
    if tuned is not None:
        parts += [f"tune raised {tuned.error}"] if tuned.error else []
        parts += [f"failed trial {f}" for f in tuned.failed]
        parts += [f"warning {w}" for w in tuned.warnings]
    return "; ".join(cell_text(p) for p in parts)


def cell_text(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def row(outcome: Outcome) -> str:
    best = outcome.grid_best()
    if outcome.error or best is None:
        return f"| {outcome.name} | {cell_text(outcome.error or 'no grid epoch')} |" + " |" * 8
    pick, grid_ratio = pick_cells(outcome, best)
    wall, share, estimate = tune_cells(outcome)
    best_cell = f"{best.label()} {outcome.median(best):.3f} s{spread(outcome.epochs[best])}"
    cells = [outcome.name, best_cell, pick, grid_ratio, fresh_cell(outcome), wall, share]
    cells += [grid_noise(outcome), estimate, notes(outcome)]
    return "| " + " | ".join(cells) + " |"


TABLE_HEAD = (
    "| workload | grid best (median epoch ±half range) | tune's pick (median epoch) | "
    "pick / best (grid's epochs) | pick / best (fresh head-to-head) | tune wall of budget | "
    "tune / grid round | grid noise | tune's own epoch figure for its pick | notes |\n"
    "|" + " --- |" * 10
)


def grid_table(outcomes: list[Outcome]) -> str:
    """Every grid config's median epoch and spread, one row per workload."""
    head = (
        "| workload | " + " | ".join(f"w={n}" for n in GRID) + " |\n|" + " --- |" * (1 + len(GRID))
    )
    lines = [head]
    for outcome in outcomes:
        cells = [grid_cell(outcome, LoaderConfig(n)) for n in GRID]
        lines.append(f"| {outcome.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid_cell(outcome: Outcome, config: LoaderConfig) -> str:
    if config in outcome.failures:
        return "failed"
    epochs = outcome.epochs.get(config)
    if not epochs:
        return "-"
    mark = "**" if config == outcome.grid_best() else ""
    return f"{mark}{statistics.median(epochs):.3f}{mark}{spread(epochs)}"


def run_text(index: int, outcomes: list[Outcome]) -> str:
    rows = "\n".join(row(o) for o in outcomes)
    return (
        f"### Run {index + 1}\n\n{TABLE_HEAD}\n{rows}\n\n"
        f"Grid medians, seconds per epoch (best in bold):\n\n{grid_table(outcomes)}\n"
    )


def verdict_lines(runs: list[list[Outcome]]) -> str:
    """Per workload: were all runs within the target in the head-to-head?"""
    lines = []
    for k, first in enumerate(runs[0]):
        ratios = [run[k].fresh_ratio() for run in runs]
        shown = ", ".join("n/a" if r is None else f"{r:.3f}" for r in ratios)
        ok = all(r is not None and r <= TARGET_EPOCH_RATIO for r in ratios)
        yes = "yes" if ok else "**no**"
        lines.append(
            f"- {first.name}: {plural(len(runs), 'run')}, all within {TARGET_EPOCH_RATIO}x of "
            f"the grid's best in the head-to-head: {yes} ({shown})"
        )
    return "\n".join(lines)


def library_versions() -> str:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def machine_text(load_before: tuple[float, ...]) -> str:
    from loadertune.engine.machine import machine_facts

    facts = machine_facts()
    load_after = os.getloadavg()
    return (
        f"Memory {facts.total_memory_bytes / 2**30:.1f} GiB, Python {facts.python_version}; "
        f"load average (1/5/15 min) {'/'.join(f'{x:.2f}' for x in load_before)} at the start, "
        f"{'/'.join(f'{x:.2f}' for x in load_after)} at the end. Libraries: {library_versions()}. "
        f"Engine: sha256 of `src/loadertune/**/*.py` {engine_fingerprint()}."
    )


def method_text(plan: Plan, abouts: dict[str, str]) -> str:
    workloads_text = "\n".join(f"- {name}: {about}" for name, about in abouts.items())
    return (
        f"Workloads (built in temporary folders, nothing downloaded):\n\n{workloads_text}\n\n"
        f"Per run and workload: one uncounted warm-up epoch at w=0; whole epochs timed by hand "
        f"(a fresh loader built by hand per epoch, `for batch in loader: step(batch)`, gc before "
        f"each) at num_workers {list(GRID)}, {plural(plan.rounds, 'interleaved round')} "
        f"rotating the order; the step runs with {plan.threads} torch intra-op "
        f"thread(s) in the main process (`--threads`); `tune` (default settings) between "
        f"rounds 1 and 2 with a budget of "
        f"{TUNE_SHARE:.0%} of round 1's wall time (at least {MIN_BUDGET_S:g} s); then the pick "
        f"against the grid's best (lowest median), {plan.pairs} fresh epochs each, alternating "
        "which goes first (the grid's best is the lowest of several noisy medians, so its own "
        "epochs flatter it). Ratios are of hand-timed medians, never of tune's own figures. "
        "Grid noise: half the relative range of a config's epochs, median over the grid. "
        f"{plural(plan.runs, 'run')}, each calling tune afresh on the same data."
    )


def section(runs: list[list[Outcome]], plan: Plan, abouts: dict[str, str], argv: list[str]) -> str:
    body = "\n".join(run_text(i, outcomes) for i, outcomes in enumerate(runs))
    return (
        f"{SECTION}\n\n{provenance('real_libs.py', argv)} {machine_text(plan.load_before)}\n\n"
        f"{method_text(plan, abouts)}\n\n{body}\n{verdict_lines(runs)}\n"
    )


# ---- main -------------------------------------------------------------------------------------


def build_all(specs: list[Spec], plan: Plan, stack: contextlib.ExitStack) -> dict[str, Built]:
    """Each workload in its own temporary folder, removed when ``stack`` closes."""
    built = {}
    for spec in specs:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="real_libs-")))
        start = time.perf_counter()
        built[spec.name] = spec.build(folder, spec.samples // plan.scale)
        log(f"{spec.name}: built in {time.perf_counter() - start:.1f} s: {built[spec.name].about}")
    return built


def one_run(built: dict[str, Built], plan: Plan, index: int) -> list[Outcome]:
    outcomes = []
    for name, workload in built.items():
        log(f"run {index + 1}/{plan.runs}, {name}")
        outcomes.append(run_workload(name, workload, plan.rounds, plan.pairs))
    return outcomes


def chosen_specs(only: str | None) -> list[Spec]:
    if not only:
        return list(SPECS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(names) - {s.name for s in SPECS})
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {[s.name for s in SPECS]}")
    return [s for s in SPECS if s.name in names]


def quiet_libraries() -> None:
    import datasets

    datasets.disable_progress_bar()
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # on purpose
    warnings.filterwarnings("ignore", message="'set_vital' is deprecated")  # torchdata's own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, 1 run, print only")
    parser.add_argument("--runs", type=int, default=3, help="independent runs (default 3)")
    parser.add_argument("--only", help="comma-separated workload names (prints only)")
    parser.add_argument(
        "--threads",
        type=int,
        default=STEP_THREADS,
        help=f"torch intra-op threads for the step (default {STEP_THREADS}; 0: torch's default)",
    )
    args = parser.parse_args(argv)
    quiet_libraries()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    plan = Plan(
        runs=1 if args.quick else args.runs,
        rounds=1 if args.quick else ROUNDS,
        pairs=QUICK_PAIRS if args.quick else FRESH_PAIRS,
        scale=QUICK_SCALE if args.quick else 1,
        threads=torch.get_num_threads(),
        load_before=os.getloadavg(),
    )
    specs = chosen_specs(args.only)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        built = build_all(specs, plan, stack)
        runs = [one_run(built, plan, i) for i in range(plan.runs)]
    abouts = {name: b.about for name, b in built.items()}
    text = section(runs, plan, abouts, sys.argv[1:] if argv is None else argv)
    print(text)
    log(f"total {time.perf_counter() - start:.0f} s")
    if not args.quick and not args.only:
        write_section(RESULTS_PATH, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
