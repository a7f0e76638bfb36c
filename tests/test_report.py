from __future__ import annotations

import io

from rich.console import Console

import fakes
from loadertune.cli.render import render
from loadertune.report.headline import headline
from loadertune.report.table import results_table


def _text(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_table_marks_the_fastest_and_shows_units() -> None:
    result = fakes.result(fakes.trial(0, 0.01), fakes.trial(2, 0.005))
    lines = _text(results_table(result)).splitlines()
    header = next(line for line in lines if "config" in line)
    for column in ("epoch", "steady/s", "startup", "wait", "peak mem"):
        assert column in header
    best = next(line for line in lines if "w=2" in line)
    other = next(line for line in lines if "w=0" in line)
    assert best.lstrip().startswith("* w=2") and not other.lstrip().startswith("*")
    assert "ms" in best and "MiB" in best


def test_failed_configs_show_as_failed_and_the_reason_is_printed() -> None:
    result = fakes.result(fakes.failed(2), fakes.trial(0, 0.01))
    console = Console(file=io.StringIO(), width=100, color_system=None)
    render(result, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "! w=2" in text and "failed" in text
    assert "ValueError: bad row 3 (index 3, batch 0)" in text


def test_headline_compares_with_one_worker_per_cpu() -> None:
    result = fakes.result(fakes.trial(0, 0.001), fakes.trial(2, 0.01, startup_s=0.1))
    text = headline(result)
    assert text.startswith("Fastest here: num_workers=0,")
    assert "num_workers=2 (one per CPU, the usual rule) is" in text
    assert "longer than a whole epoch of the fastest" in text


def test_headline_without_any_success() -> None:
    assert headline(fakes.result(fakes.failed(0))).startswith("No configuration completed")


def test_tuning_lines_say_how_many_times_faster_the_pick_runs() -> None:
    from loadertune.report.tuning import tuning_lines

    result = fakes.result(fakes.trial(0, 0.02), fakes.trial(2, 0.01))
    result.pick = fakes.LoaderConfig(2)
    result.tuning = {
        "strategy": "adaptive",
        "reason": "fastest measured",
        "speedups": {
            "baseline": {"label": "w=0", "speedup": 1.96},
            "lightning": {"label": "w=1", "speedup": None},
        },
        "elapsed_s": 5.0,
        "budget_s": 10,
    }
    lines = tuning_lines(result)
    assert (
        "The pick runs 1.96x as fast as the baseline (w=0); "
        "Lightning's CPUs - 1 (w=1) was not measured." in lines
    )
