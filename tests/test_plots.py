"""The PNG charts: written, decodable, a plausible size; and a clear error without matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import fakes
from loadertune import LoaderConfig, Result, Trial, UsageError
from loadertune.report import plots

pytest.importorskip("matplotlib")

MIN_BYTES = 20_000  # an empty 10x5 in axes is ~10 KB; bars, markers and text add more
WIDTH_PX = plots.WIDTH_IN * plots.DPI


def _variant(config: LoaderConfig, batch_s: float, repeat: int = 0) -> Trial:
    trial = fakes.trial(config.num_workers, batch_s, repeat=repeat)
    trial.config = config
    return trial


def many_configs() -> Result:
    """Worker counts 0..32 with repeats, knob variants at 4, and one failed config."""
    trials = [
        fakes.trial(w, 0.02 / (1 + w) + 0.001 * w, repeat=r)
        for w in (0, 1, 2, 4, 8, 16, 32)
        for r in range(2)
    ]
    trials += [
        _variant(LoaderConfig(4, persistent_workers=True), 0.004),
        _variant(LoaderConfig(4, prefetch_factor=4, multiprocessing_context="spawn"), 0.006),
        fakes.failed(12),
    ]
    return fakes.result(*trials, repeats=2)


def _assert_png(path: Path, min_height_px: float) -> None:
    from matplotlib.image import imread

    assert path.stat().st_size > MIN_BYTES
    pixels = imread(path)
    height, width = pixels.shape[:2]
    assert width == pytest.approx(WIDTH_PX, abs=2)
    assert min_height_px <= height <= 9 * plots.DPI + 2
    assert pixels.std() > 0.05  # not a blank canvas


def test_throughput_png_is_written_and_decodes(tmp_path: Path) -> None:
    out = plots.throughput_png(many_configs(), tmp_path / "charts" / "time.png")
    assert out == tmp_path / "charts" / "time.png"
    _assert_png(out, plots.HEIGHT_IN * plots.DPI - 2)


def test_variants_at_one_worker_count_are_separate_series() -> None:
    summaries = many_configs().summaries()
    series = plots._series(summaries)
    assert next(iter(series)) == plots.BASE
    assert "persistent_workers=True" in series
    assert "prefetch_factor=4, multiprocessing_context=spawn" in series
    where = plots._x_positions(summaries)
    at_four = [where[s.config] for s in summaries if s.config.num_workers == 4]
    assert len(set(at_four)) == 3  # side by side, not on top of each other


def test_timeline_png_with_workers_and_without(tmp_path: Path) -> None:
    many = fakes.trial(16, 0.01)
    many.handed_s = [0.001] * 20
    result = fakes.result(many, fakes.trial(0, 0.001))
    _assert_png(plots.timeline_png(result, tmp_path / "w16.png"), plots.HEIGHT_IN * plots.DPI - 2)
    w0 = result.summaries()[1].trials[0]
    _assert_png(plots.timeline_png(result, tmp_path / "w0.png", trial=w0), 500)


def test_timeline_png_of_a_result_where_nothing_ran(tmp_path: Path) -> None:
    out = plots.timeline_png(fakes.result(fakes.failed(2)), tmp_path / "none.png")
    assert out.stat().st_size > 1_000


def test_without_matplotlib_the_error_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(plots.PlotUnavailableError, match=r"pip install 'loadertune\[plot\]'"):
        plots.throughput_png(many_configs(), tmp_path / "time.png")
    with pytest.raises(ImportError):
        plots.timeline_png(many_configs(), tmp_path / "timeline.png")
    with pytest.raises(UsageError):
        plots.timeline_png(many_configs(), tmp_path / "timeline.png")
    assert not list(tmp_path.iterdir())


def test_plots_leave_pyplot_and_the_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    plots.throughput_png(many_configs(), tmp_path / "time.png")
    assert matplotlib.get_backend() == backend
    assert "matplotlib.pyplot" not in sys.modules or _no_open_figures()


def _no_open_figures() -> bool:
    import matplotlib.pyplot as plt

    return not plt.get_fignums()


def test_throughput_png_of_an_all_failed_run_says_so_instead_of_empty_axes(
    tmp_path: Path,
) -> None:
    from matplotlib.image import imread

    out = plots.throughput_png(fakes.result(fakes.failed(0), fakes.failed(2)), tmp_path / "t.png")
    height = imread(out).shape[0]
    assert height == pytest.approx(plots.HEIGHT_IN / 2 * plots.DPI, abs=2)  # the note's figure


def test_the_memory_axis_leaves_room_above_its_highest_marker() -> None:
    summaries = many_configs().summaries()
    figure = plots._figure(plots.HEIGHT_IN)
    ax = figure.add_subplot()
    plots._plot_memory(ax, summaries, plots._x_positions(summaries))
    right = figure.axes[1]
    highest = max(s.figure("peak_memory_bytes").median for s in summaries if not s.failed)  # type: ignore[union-attr]
    assert right.get_ylim()[1] >= 1.1 * highest / 2**20  # MiB: the marker is drawn whole
