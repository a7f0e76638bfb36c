"""Clocks on an asynchronous device, proved on a fake one whose step returns before its work is
done: the epoch ends after a synchronize, a cut-short trial synchronizes at the cut, the step
alone too, and nothing synchronizes per step; the GPU's idle time is the gaps between steps."""

from __future__ import annotations

import pytest
import torch

from fakebackend import FakeBackend, FakeClock
from fakedevice import FakeGpu, gpu_step
from loadertune import LoaderConfig, Trial, TrialLimits, Workload
from loadertune.engine.device import StepMarks, check_choice, device_for
from loadertune.engine.diagnose import step_alone
from loadertune.engine.offline import run_trial
from sample_data import Rows

BATCH = 8
LIMITS = TrialLimits(budget_s=30.0, timeout_s=20.0)
START = 100.0  # the fake clock's reading when a trial begins


def _run(
    batches: int,
    make_s: float,
    cpu_s: float,
    gpu_s: float,
    limits: TrialLimits = LIMITS,
    *,
    found_after_step: bool = False,
) -> tuple[Trial, FakeGpu]:
    clock = FakeClock(START)
    gpu = FakeGpu(clock)
    rows = torch.zeros(batches * BATCH, 4)
    backend = FakeBackend(rows, BATCH, clock, make_s)
    step = gpu_step(clock, gpu, cpu_s, gpu_s)
    workload = Workload(Rows(batches * BATCH), step=step, batch_size=BATCH, shuffle=False)

    def devices() -> FakeGpu | None:  # as device_for("auto"): found once CUDA is initialised
        return gpu if gpu.launched or not found_after_step else None

    trial = run_trial(
        workload, LoaderConfig(0), limits, clock=clock, backend=backend, devices=devices
    )
    return trial, gpu


def test_the_epoch_ends_once_the_queued_work_is_done() -> None:
    trial, gpu = _run(batches=8, make_s=0.001, cpu_s=0.0005, gpu_s=0.004)
    assert trial.ok and trial.complete and trial.device == "fake:0 Async"
    # the GPU is the limit: the first batch, then 8 steps of GPU work back to back
    assert trial.epoch_s == pytest.approx(0.001 + 8 * 0.004)
    assert trial.epoch_s == pytest.approx(gpu.busy_until - START)
    assert trial.step_end_s[-1] < 0.02  # the CPU returned from the last step long before


def test_without_the_device_the_clock_misses_the_queued_work() -> None:
    """The reference the test above is measured against: the CPU-side clock alone."""
    clock = FakeClock(START)
    gpu = FakeGpu(clock)
    step = gpu_step(clock, gpu, 0.0005, 0.004)
    workload = Workload(Rows(64), step=step, batch_size=BATCH, shuffle=False, device="cpu")
    backend = FakeBackend(torch.zeros(64, 4), BATCH, clock, 0.001)
    trial = run_trial(workload, LoaderConfig(0), LIMITS, clock=clock, backend=backend)
    assert trial.device is None and not gpu.syncs
    assert trial.epoch_s == pytest.approx(8 * 0.0015)  # a third of the true epoch


def test_no_step_is_synchronized_the_count_does_not_grow_with_the_epoch() -> None:
    short, short_gpu = _run(batches=8, make_s=0.001, cpu_s=0.0005, gpu_s=0.004)
    long, long_gpu = _run(batches=64, make_s=0.001, cpu_s=0.0005, gpu_s=0.004)
    assert long.batches == 8 * short.batches
    assert len(long_gpu.syncs) == len(short_gpu.syncs) <= 4  # start, epoch end, read


def test_a_gpu_kept_busy_has_no_idle_time() -> None:
    trial, _ = _run(batches=8, make_s=0.001, cpu_s=0.0005, gpu_s=0.004)
    assert len(trial.gpu_start_s) == len(trial.gpu_end_s) == 8
    assert trial.gpu_idle_s == pytest.approx(0.0)
    assert trial.gpu_busy_s == pytest.approx(8 * 0.004)
    assert trial.gpu_idle_fraction == pytest.approx(0.0)


def test_a_gpu_starved_of_input_idles_between_steps() -> None:
    make_s, cpu_s, gpu_s = 0.005, 0.0002, 0.001
    trial, _ = _run(batches=8, make_s=make_s, cpu_s=cpu_s, gpu_s=gpu_s)
    period = make_s + cpu_s  # a step starts every period; its work takes gpu_s of it
    assert trial.gpu_idle_s == pytest.approx(7 * (period - gpu_s))
    assert trial.gpu_idle_fraction == pytest.approx(7 * (period - gpu_s) / (7 * period + gpu_s))
    # the CPU's view: it waits make_s of every period, about the same share here
    assert trial.data_wait_fraction == pytest.approx(make_s / period, rel=0.1)


def test_a_trial_cut_short_synchronizes_at_the_cut() -> None:
    limits = TrialLimits(budget_s=0.05, timeout_s=20.0)
    trial, gpu = _run(batches=500, make_s=0.001, cpu_s=0.0005, gpu_s=0.004, limits=limits)
    assert trial.ok and not trial.complete and trial.batches < 500
    assert trial.step_end_s[-1] == pytest.approx(gpu.busy_until - START)  # the synced cut
    assert trial.step_end_s[-1] == pytest.approx(0.001 + trial.batches * 0.004)
    assert len(gpu.syncs) <= 3  # start, the cut, the read
    # the rest of the epoch at the measured rate: nothing the GPU had queued is lost
    assert trial.epoch_s is not None and trial.epoch_s >= trial.step_end_s[-1]


def test_a_device_initialised_by_the_first_step_is_found_after_it() -> None:
    trial, gpu = _run(batches=8, make_s=0.001, cpu_s=0.0005, gpu_s=0.004, found_after_step=True)
    assert trial.device == gpu.name
    assert len(trial.gpu_start_s) == 7  # every step after the first is marked
    assert trial.epoch_s == pytest.approx(gpu.busy_until - START)


def test_the_step_alone_is_timed_to_a_synchronize() -> None:
    clock = FakeClock(START)
    gpu = FakeGpu(clock)
    cpu_s, gpu_s = 0.0005, 0.004
    workload = Workload(Rows(64), step=gpu_step(clock, gpu, cpu_s, gpu_s), batch_size=BATCH)
    cached = [torch.zeros(BATCH, 4)] * 4
    out = step_alone(workload, cached, budget_s=0.1, clock=clock, devices=lambda: gpu)
    assert out is not None and len(gpu.syncs) == 2
    assert out["samples_per_s"] == pytest.approx(BATCH / gpu_s, rel=0.01)  # the GPU's rate
    alone = step_alone(workload, cached, budget_s=0.1, clock=clock)
    assert alone is not None and alone["samples_per_s"] == pytest.approx(BATCH / cpu_s, rel=0.01)


def test_marks_past_the_limit_are_not_taken() -> None:
    gpu = FakeGpu(FakeClock(0.0))
    marks = StepMarks(gpu, limit=3)
    for _ in range(5):
        marks.before()
        gpu.launch(1.0)
        marks.after()
    starts, ends = marks.read()
    assert starts == [0.0, 1.0, 2.0] and ends == [1.0, 2.0, 3.0]


def test_gpu_figures_travel_in_the_json_and_a_cpu_trial_has_none() -> None:
    trial, _ = _run(batches=8, make_s=0.005, cpu_s=0.0002, gpu_s=0.001)
    doc = trial.to_dict()
    assert doc["device"] == trial.device and doc["gpu_idle_fraction"] > 0.5
    again = Trial.from_dict(doc)
    assert again.gpu_start_s == trial.gpu_start_s and again.gpu_end_s == trial.gpu_end_s
    assert again.gpu_idle_fraction == pytest.approx(trial.gpu_idle_fraction)
    plain = Trial(LoaderConfig(0)).to_dict()
    assert not [k for k in (*plain, *plain["raw"]) if "gpu" in k or k == "device"]
    assert Trial.from_dict(plain).device is None


def test_on_a_machine_without_cuda_auto_is_the_cpu_and_cuda_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert device_for("auto") is None and device_for("cpu") is None
    with pytest.raises(ValueError, match="no CUDA device"):
        check_choice("cuda")
    with pytest.raises(ValueError, match="auto, cuda, cpu"):
        Workload(Rows(8), device="tpu")


class _Event:
    """torch.cuda.Event's shape: recorded on the stream, elapsed_time in milliseconds."""

    clock = FakeClock(0.0)

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at: float | None = None

    def record(self) -> None:
        self.at = self.clock()

    def elapsed_time(self, later: _Event) -> float:
        assert self.at is not None and later.at is not None
        return (later.at - self.at) * 1000.0


def test_the_cuda_device_speaks_torch_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real device's calls, against torch.cuda's names and units (no GPU here)."""
    from loadertune.engine.device import CudaDevice

    synced: list[bool] = []
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"Fake GPU {index}")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: synced.append(True))
    device = CudaDevice()
    assert device.name == "cuda:0 Fake GPU 0"
    device.prepare(4)
    marks = StepMarks(device)
    for step_s in (0.002, 0.003, 0.001):
        marks.before()
        _Event.clock.advance(step_s)
        marks.after()
        _Event.clock.advance(0.001)
    device.synchronize()
    starts, ends = marks.read()
    assert starts == pytest.approx([0.0, 0.003, 0.007]) and ends == pytest.approx(
        [0.002, 0.006, 0.008]
    )
    assert synced == [True]


def test_a_batch_is_copied_plain_and_pinned_each_timed_to_a_synchronize() -> None:
    """Pinning takes PIN_S on the CPU; a plain copy blocks for PLAIN_S; a pinned copy with
    non_blocking=True returns at once and its transfer takes PINNED_S on the device."""
    from loadertune.engine.transfer import CopyOps, host_to_device

    pin_s, plain_s, pinned_s = 0.0004, 0.001, 0.0003
    clock = FakeClock(START)
    gpu = FakeGpu(clock)

    def pin(t: torch.Tensor) -> torch.Tensor:
        clock.advance(pin_s)
        return t

    def copy(t: torch.Tensor, non_blocking: bool) -> torch.Tensor:
        if non_blocking:
            gpu.launch(pinned_s)
        else:
            clock.advance(plain_s)
        return t

    batch = [torch.zeros(BATCH, 4), torch.zeros(BATCH, dtype=torch.int64)]
    out = host_to_device(batch, gpu, ops=CopyOps(pin, copy), clock=clock, rounds=3)
    assert out is not None and out["bytes"] == BATCH * 4 * 4 + BATCH * 8
    assert out["plain_s"] == pytest.approx(2 * plain_s)  # two tensors
    assert out["pin_s"] == pytest.approx(2 * pin_s)
    assert out["pinned_s"] == pytest.approx(2 * pinned_s) and out["pinned_enqueue_s"] == 0
    assert out["pin_net_s"] == pytest.approx(2 * (pin_s + pinned_s - plain_s))
    assert host_to_device([1, 2], gpu, ops=CopyOps(pin, copy), clock=clock) is None
