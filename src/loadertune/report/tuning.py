"""What a search found, in a few lines: the pick, why, what it gains, what the budget cut."""

from __future__ import annotations

from typing import Any

from loadertune.records.result import Result

FEW_CONFIGS = 4  # the anchors alone are three: fewer than this and nothing was searched

RULE_NAMES = {
    "baseline": "the baseline",
    "one_per_cpu": "one worker per CPU",
    "lightning": "Lightning's CPUs - 1",
}


def tuning_lines(result: Result) -> list[str]:
    """Lines for the terminal and the report; empty for a result that was not a search."""
    tuning = result.tuning
    if not tuning:
        return []
    best = result.best
    if best is None:
        return [f"No pick: {tuning.get('reason')}."]
    lines = [
        f"Pick: {best.config.label()}: {tuning.get('reason')}.",
        f"  {best.usage}",
    ]
    gains = _gains(tuning.get("speedups") or {})
    if gains:
        lines.append("The pick runs " + "; ".join(gains) + ".")
    lines.append(_budget_line(tuning))
    configs = len({t.config for t in result.trials})
    if tuning.get("stopped_by_budget") and configs < FEW_CONFIGS:
        lines.append(
            f"Only {configs} configs fit in the budget, so the pick is rough: a larger --budget "
            "lets the search look further (importing torch alone takes seconds)."
        )
    lines += [f"  {label}: {why}" for label, why in (tuning.get("rejected") or {}).items()]
    method = result.settings.get("start_method") or {}
    if method.get("fork"):
        lines.append(f"Start method: {method['fork']}; workers start with {method.get('used')}.")
    return lines


def _gains(speedups: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key, entry in speedups.items():
        ratio = entry.get("speedup")
        name = f"{RULE_NAMES.get(key, key)} ({entry.get('label')})"
        out.append(f"{ratio:.2f}x as fast as {name}" if ratio else f"{name} was not measured")
    return out


def _budget_line(tuning: dict[str, Any]) -> str:
    if tuning.get("strategy") == "online":
        return _online_line(tuning)
    spent, budget = tuning.get("elapsed_s", 0), tuning.get("budget_s", 0)
    line = f"Search: {tuning.get('strategy')}, {spent:.1f} s of {budget:g} s"
    if tuning.get("stopped_by_budget"):
        line += f"; the budget cut it short: next it would try {_label(tuning.get('next'))}"
    if tuning.get("diagnosis"):
        line += "; no time was left to diagnose the pick (headroom, batch probes)"
    return line + "."


def _online_line(tuning: dict[str, Any]) -> str:
    """An online loader's search: it ran inside the job, with no budget of its own."""
    judged, lost = tuning.get("stretches_judged", 0), tuning.get("lost_s", 0.0)
    state = "settled" if tuning.get("settled") else "still searching when the job ended"
    return (
        f"Search: online, inside the training job; {judged} stretches judged, "
        f"{lost:.2f} s lost to configs slower than the best so far; {state}."
    )


def _label(kwargs: dict[str, Any] | None) -> str:
    if not kwargs:
        return "nothing"
    return ", ".join(f"{k}={v}" for k, v in kwargs.items())
