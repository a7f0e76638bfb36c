"""Formatting figures with their units, one place for all renderers."""

from __future__ import annotations

from loadertune.records.stats import Spread


def seconds(value: float | None) -> str:
    """``0.0113`` -> ``'11.3 ms'``; ``8.61`` -> ``'8.61 s'``."""
    if value is None:
        return "-"
    if value < 1.0:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def seconds_spread(value: Spread | None) -> str:
    """Median and relative range: ``'11.3 ms ±4%'`` (range over repeats, half-width)."""
    if value is None:
        return "-"
    if value.n < 2:
        return seconds(value.median)
    return f"{seconds(value.median)} ±{value.rel * 50:.0f}%"


def rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def size(n_bytes: float | None) -> str:
    """Bytes in binary units: ``'312 MiB'``."""
    if n_bytes is None:
        return "-"
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} TiB"
