"""The verdict, the headroom and the advice, as lines for the terminal and the report."""

from __future__ import annotations

from loadertune.analysis.advice import findings
from loadertune.analysis.explanation import result_verdict
from loadertune.records.result import Result


def verdict_lines(result: Result) -> list[str]:
    """One paragraph: what limits the pick, why more workers lose, the headroom."""
    verdict = result_verdict(result)
    if verdict is None:
        return []
    return [f"Verdict: {verdict['sentence']}"]


def advice_lines(result: Result) -> list[str]:
    """Each finding with its fix, numbered; failed probes named so a gap is not silent."""
    lines, advice = [], findings(result)
    for number, finding in enumerate(advice, start=1):
        lines.append(f"{number}. {finding['finding']}")
        lines.append(f"   Fix: {finding['fix']}")
    errors = (result.diagnosis or {}).get("errors") or {}
    lines += [f"(the {name.replace('_', ' ')} probe failed: {why})" for name, why in errors.items()]
    return ["Advice:", *lines] if advice else lines


def warning_lines(result: Result) -> list[str]:
    """Why the user's loader class was not rebuilt, and how a short stream was compared, if
    so; then each distinct trial warning once, with the configs it came from (it carries its
    fix)."""
    seen: dict[str, list[str]] = {}
    for trial in result.trials:
        for warning in trial.warnings:
            labels = seen.setdefault(warning, [])
            if trial.config.label() not in labels:
                labels.append(trial.config.label())
    lines = [f"Warning ({', '.join(labels)}): {text}" for text, labels in seen.items()]
    facts = result.workload
    notes = [f"Warning: {facts['loader_fallback']}"] if facts.get("loader_fallback") else []
    if facts.get("stream_note"):
        notes.append(f"Note: {facts['stream_note']}")
    diagnosed = (result.diagnosis or {}).get("warnings") or []
    return notes + lines + [f"Warning (diagnosis): {text}" for text in diagnosed]
