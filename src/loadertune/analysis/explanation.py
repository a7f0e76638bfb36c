"""The verdict on a result, in plain sentences whose every figure was measured: what limits the
pick, why configs with more workers lose, and the headroom left."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadertune.analysis.verdict import COMPUTE, STARTUP, TRANSFER, Bottleneck, summary_bottleneck
from loadertune.records import units

AT_STEP_SPEED = 0.95  # the pick within 5% of the step alone (measured apart, on a drifting
# machine: a step timed 7.2 ms then 9.4 ms a minute later here) runs at the step's speed

if TYPE_CHECKING:
    from loadertune.records.result import Result, Summary


def result_verdict(result: Result) -> dict[str, Any] | None:
    """The pick's bottleneck, one sentence on it, why more workers lose, and the headroom."""
    best = result.best
    verdict = summary_bottleneck(best) if best is not None else None
    if best is None or verdict is None:
        return None
    if result.workload.get("step") is None:
        sentences = [loader_only_sentence(best, result.usable_cpus)]
    else:
        sentences = [pick_sentence(best, verdict, result.usable_cpus)]
    loser = _more_workers(result, best)
    if loser is not None:
        sentences.append(why_slower(best, loser))
    beaten_by = baseline_sentence(result, best)
    if beaten_by is not None:
        sentences.append(beaten_by)
    room = headroom(result)
    if room is not None:
        sentences.append(room["sentence"])
    return {
        "config": best.config.label(),
        **verdict.to_dict(),
        "sentence": " ".join(sentences),
        "headroom": room,
    }


def baseline_sentence(result: Result, best: Summary) -> str | None:
    """When the search's baseline ran faster than its pick: by how much, and why the pick
    stands anyway (rejected, within the noise and cheaper, or a figure from one run)."""
    tuning = result.tuning or {}
    baseline = (tuning.get("speedups") or {}).get("baseline") or {}
    ratio, label = baseline.get("speedup"), baseline.get("label")
    if ratio is None or ratio >= 1 or not label:
        return None
    summary = next((s for s in result.summaries() if s.config.label() == label), None)
    runs = len(summary.ok_trials) if summary is not None else 0
    rejected = (tuning.get("rejected") or {}).get(label)
    if rejected:
        why = f"it was {rejected}"
    elif summary is not None and summary.measured_once:
        why = "it was measured once, so its figure has no spread to judge it by"
    else:
        why = f"that is within the noise ({units.percent(tuning.get('noise'))}), and the "
        why += "pick is the cheaper config"
    return (
        f"Your baseline, {label}, ran {1 / ratio:.3g}x as fast as the pick "
        f"(median of {runs} run{'s' if runs != 1 else ''}); {why}."
    )


def pick_sentence(summary: Summary, verdict: Bottleneck, cpus: int | None = None) -> str:
    """What limits ``summary``'s config, with its figures."""
    label = summary.config.label()
    if verdict.kind == STARTUP:
        startup = summary.figure("startup_s")
        return (
            f"Startup-bound: at {label}, {units.percent(verdict.startup_share)} of the run passes "
            f"before the first batch ({units.seconds(startup.median if startup else None)} to "
            f"start the workers); {_startup_fix(summary)} would cut it."
        )
    if verdict.kind == COMPUTE:
        return (
            f"Compute-bound: at {label} {waits(verdict, only=True)}, so faster loading cannot "
            "help; fewer workers may do as well."
        )
    if verdict.kind == TRANSFER:
        return (
            f"Transfer-bound ({verdict.degree}): at {label} {waits(verdict)}, "
            f"{units.percent(verdict.transit_share)} of it for batches already made "
            "and in transit from the workers; fewer workers, compact dtypes or batched fetching "
            "(__getitems__) cut that."
        )
    where = " and loading runs in the main process" if not summary.config.num_workers else ""
    return (
        f"Input-bound ({verdict.degree}): at {label} {waits(verdict)}{where}."
        f"{_cpu_note(summary, cpus)}"
    )


def waits(verdict: Bottleneck, *, only: bool = False) -> str:
    """How long the step waited for data: on a GPU, the GPU's idle time between steps (with
    the loop's own wait beside it), else the loop's."""
    wait = units.percent(verdict.wait_fraction)
    if verdict.gpu_idle_fraction is None:
        return f"the step waits for data {'only ' if only else ''}{wait} of the time"
    gpu = units.percent(verdict.gpu_idle_fraction)
    return (
        f"the GPU sat idle {'only ' if only else ''}{gpu} of the time between steps (the "
        f"loop waits for data {wait} of its time)"
    )


def _startup_fix(summary: Summary) -> str:
    """Persistent workers pay startup once, so they help only when more epochs follow."""
    if summary.epochs > 1 and not summary.config.persistent_workers:
        return "persistent_workers=True or fewer workers"
    return "fewer workers"


def loader_only_sentence(summary: Summary, cpus: int | None) -> str:
    """Without a step the loop only loads: every config is input-bound by construction, and
    what matters is how fast the loader delivers."""
    rate = summary.figure("samples_per_s")
    return (
        "No training step was given, so the loop only loads and waits for data all the time; "
        f"at {summary.config.label()} the loader delivers "
        f"{units.rate(rate.median if rate else None)} samples/s.{_cpu_note(summary, cpus)}"
    )


def _cpu_note(summary: Summary, cpus: int | None) -> str:
    busy = summary.figure("cpu_busy")
    if not summary.config.num_workers or busy is None or cpus is None:
        return ""
    return f" The loader and step keep {busy.median:.1f} of {cpus} usable CPUs busy."


def why_slower(best: Summary, other: Summary) -> str:
    """Why ``other`` (more workers) loses to ``best``, from its own bottleneck."""
    mine, theirs = _epoch(best), _epoch(other)
    verdict = summary_bottleneck(other)
    startup = other.figure("startup_s")
    text = (
        f"More workers do not help: {other.config.label()} takes {units.seconds(theirs)} per "
        f"epoch ({theirs / mine:.2g}x the pick's)"
    )
    if startup is not None:
        text += f", {units.seconds(startup.median)} of it before its first batch"
    if verdict is None:
        return text + "."
    return f"{text}; {_reason(verdict)}."


def _reason(verdict: Bottleneck) -> str:
    if verdict.kind == STARTUP:
        return f"startup-bound, {units.percent(verdict.startup_share)} of its run"
    if verdict.kind == TRANSFER:
        return (
            f"transfer-bound ({verdict.degree}): it waits for data "
            f"{units.percent(verdict.wait_fraction)} of the time, "
            f"{units.percent(verdict.transit_share)} of that for batches already made, in "
            "transit from the workers"
        )
    if verdict.kind == COMPUTE:
        return "compute-bound: its step no longer waits, and its workers compete with it for CPU"
    if verdict.gpu_idle_fraction is not None:
        return f"still input-bound: {waits(verdict)}"
    return f"still input-bound, waiting for data {units.percent(verdict.wait_fraction)} of the time"


def headroom(result: Result) -> dict[str, Any] | None:
    """The step alone against the pick: how much faster loading could still make the job."""
    diagnosis = result.diagnosis or {}
    alone = (diagnosis.get("step_alone") or {}).get("samples_per_s")
    best = result.best
    pick = best.figure("samples_per_s") if best is not None else None
    if not alone or pick is None:
        return None
    loader = (diagnosis.get("loader_alone") or {}).get("samples_per_s")
    share = pick.median / alone
    who = "the pick" if result.tuning or best is None else best.config.label()
    sentence = _headroom_sentence(alone, pick.median, share, who)
    if loader:
        sentence += f", and its loader alone makes {units.rate(loader)} samples/s"
    return {
        "best_possible_samples_per_s": alone,
        "pick_samples_per_s": pick.median,
        "pick_share": share,
        "loader_alone_samples_per_s": loader,
        "sentence": sentence + ".",
    }


def _headroom_sentence(alone: float, pick: float, share: float, who: str) -> str:
    """``who``: the pick of a search, else the best config measured (by its label)."""
    if share >= AT_STEP_SPEED:  # over 100% is the machine's drift between the two measurements
        return (
            f"{who[:1].upper()}{who[1:]} runs at about the speed of the step alone on cached "
            "batches "
            f"({units.rate(pick)} against {units.rate(alone)} samples/s): faster loading cannot "
            "help"
        )
    return (
        f"The best possible here is about {units.rate(alone)} samples/s (the step alone on "
        f"cached batches); {who} reaches {units.percent(share)}"
    )


def _more_workers(result: Result, best: Summary) -> Summary | None:
    """The fastest config with more workers than the pick, if it is slower."""
    more = [
        s
        for s in result.summaries()
        if s.config.num_workers > best.config.num_workers and s.epoch_s is not None
    ]
    fastest = min(more, key=_epoch, default=None)
    return fastest if fastest is not None and _epoch(fastest) > _epoch(best) else None


def _epoch(summary: Summary) -> float:
    return summary.epoch_s.median if summary.epoch_s else float("inf")
