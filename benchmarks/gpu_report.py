"""The Markdown section of ``gpu_check.py``, made from its JSON document (pure: measures nothing,
so a partial document still gives a section, and a saved one can be rendered again)."""

from __future__ import annotations

import statistics
from typing import Any

SECTION = "## GPU: synchronized epochs, GPU idle time and pinned memory (issue 17)"
TOLERANCE = 0.05  # done when loadertune's epoch is within 5% of the synchronized hand epoch


def section(doc: dict[str, Any]) -> str:
    parts = [SECTION, "", _provenance(doc), ""]
    parts += _epochs(doc.get("epochs") or {})
    parts += _idle(doc.get("idle") or {})
    parts += _picks(doc.get("picks") or {}, doc)
    parts += _problems(doc)
    return "\n".join(parts).rstrip("\n") + "\n"


def _provenance(doc: dict[str, Any]) -> str:
    facts = doc.get("facts") or {}
    loads = doc.get("workloads") or {}
    what = "; ".join(f"{k}: {v}" for k, v in loads.items())
    command = " ".join(["PYTHONPATH=src python3 benchmarks/gpu_check.py", *doc.get("argv", [])])
    return (
        f"Command: `{command}` ({facts.get('created', '?')}, {doc.get('elapsed_s', '?')} s). "
        f"Device: **{doc.get('gpu')}**"
        f", torch {facts.get('torch', '?')}, CUDA {facts.get('cuda', '?')}, Python "
        f"{facts.get('python', '?')}, {facts.get('cpus', '?')} usable CPUs. Workloads ({what}), "
        "batch 64; each step copies with .to(non_blocking=True) and never synchronizes."
    )


def _median(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _epochs(epochs: dict[str, Any]) -> list[str]:
    if not epochs:
        return []
    lines = [
        "### Epochs: loadertune against hand timing synchronized before and after",
        "",
        "| workload | config | loadertune epoch s | hand epoch s | ratio | within 5% | GPU idle "
        "between steps | CPU waits for data | runs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    agree = total = 0
    for name, rows in epochs.items():
        for label, row in rows.items():
            tool = _median([t["epoch_s"] for t in row["tool"]])
            hand = _median(row["hand_s"])
            ratio = tool / hand if tool and hand else None
            ok = ratio is not None and abs(ratio - 1) <= TOLERANCE
            agree, total = agree + ok, total + (ratio is not None)
            idle = _median([t["gpu_idle"] for t in row["tool"]])
            wait = _median([t["cpu_wait"] for t in row["tool"]])
            errors = {t["error"] for t in row["tool"] if t.get("error")}
            errors |= {f"hand: {e}" for e in row.get("hand_errors") or []}
            lines.append(
                f"| {name} | {label} | {_s(tool)} | {_s(hand)} | "
                f"{'-' if ratio is None else f'{ratio:.3f}'} | {'yes' if ok else 'no'} | "
                f"{_pct(idle)} | {_pct(wait)} | {len(row['tool'])}/{len(row['hand_s'])}"
                f"{' ' + '; '.join(sorted(errors)) if errors else ''} |"
            )
    lines += ["", f"{agree} of {total} configs within {TOLERANCE:.0%} (medians).", ""]
    return lines


def _idle(idle: dict[str, Any]) -> list[str]:
    if not idle:
        return []
    lines = [
        "### GPU idle: loadertune's CUDA events against torch.profiler, the same epoch",
        "",
        "| workload | config | loadertune idle between steps | profiler idle between steps "
        "| profiler: no kernel running | steps seen by the profiler / marked / batches |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, rows in idle.items():
        for label, row in rows.items():
            view = row["profiler"]
            lines.append(
                f"| {name} | {label} | {_pct(row['tool']['gpu_idle'])} | "
                f"{_pct(view['between_steps_idle'])} | {_pct(view['kernel_idle'])} | "
                f"{view['steps']} / {row['marked']} / {row['batches']} |"
            )
    return [*lines, ""]


def _pair(measured: dict[str, Any], workers: int) -> tuple[float | None, float | None]:
    """Epoch medians of ``w=N pin`` and ``w=N`` (pin_memory alone changed), where measured."""
    on, off = measured.get(f"w={workers} pin") or {}, measured.get(f"w={workers}") or {}
    return on.get("epoch_s"), off.get("epoch_s")


def pin_wins(measured: dict[str, Any], workers: int, noise: float | None) -> bool | None:
    """Whether pin_memory=True beat pin off at ``workers`` beyond the noise (None: not both
    measured)."""
    on, off = _pair(measured, workers)
    if not on or not off:
        return None
    return on < off * (1 - (noise or 0.03))


def _picks(picks: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    if not picks:
        return []
    budget = (doc.get("plan") or {}).get("tune_budget_s")
    lines = [
        f"### Picks: loadertune.tune, {budget} s budget",
        "",
        "| workload | pick | pin on vs off at the pick's workers | pin picked only where it wins "
        "| copy of one batch: plain / pin / pinned (non_blocking) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, pick in picks.items():
        workers = next(
            (m["workers"] for label, m in pick["measured"].items() if label == pick["pick"]), None
        )
        wins = (
            pin_wins(pick["measured"], workers, pick.get("noise")) if workers is not None else None
        )
        pair = _pin_pair(pick["measured"], workers)
        honest = "-" if wins is None else ("yes" if wins == pick["pick_pins"] else "**no**")
        lines.append(f"| {name} | {pick['pick']} | {pair} | {honest} | {_copy(pick.get('copy'))} |")
    lines.append("")
    for name, pick in picks.items():
        lines.append(f"- **{name}** verdict: {pick.get('verdict')}")
        lines += [f"  - advice {a}" for a in pick.get("advice") or []]
    return [*lines, ""]


def _pin_pair(measured: dict[str, Any], workers: int | None) -> str:
    if workers is None:
        return "-"
    on, off = _pair(measured, workers)
    if not on or not off:
        return f"pin not measured at w={workers}"
    return f"{on:.4f} s vs {off:.4f} s ({on / off:.2f}x)"


def _copy(copy: dict[str, Any] | None) -> str:
    if not copy:
        return "-"
    ms = [copy.get(k) for k in ("plain_s", "pin_s", "pinned_s")]
    return " / ".join("-" if v is None else f"{v * 1e3:.3f} ms" for v in ms) + (
        f" ({copy.get('bytes', 0) / 2**20:.2f} MiB)"
    )


def _problems(doc: dict[str, Any]) -> list[str]:
    lines = [f"- failed: {e['what']}: {e['error']}" for e in doc.get("errors") or []]
    lines += [f"- skipped (deadline): {what}" for what in doc.get("skipped") or []]
    return ["Problems:", "", *lines, ""] if lines else []
