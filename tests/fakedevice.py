"""A fake asynchronous device on the fake clock: a step queues its work and returns before it is
done, as a CUDA step does. Work runs in queue order after what is queued; a mark is reached once
the work before it is done; ``synchronize`` moves the clock to the end of the queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fakebackend import FakeClock


@dataclass
class FakeGpu:
    clock: FakeClock
    name: str = "fake:0 Async"
    busy_until: float = 0.0  # when the queued work is done, on the fake clock
    syncs: list[float] = field(default_factory=list)  # the clock after each synchronize
    launched: int = 0

    def launch(self, gpu_s: float) -> None:
        """Queue ``gpu_s`` of work; returns at once."""
        self.busy_until = max(self.clock(), self.busy_until) + gpu_s
        self.launched += 1

    def synchronize(self) -> None:
        self.clock.now = max(self.clock.now, self.busy_until)
        self.syncs.append(self.clock.now)

    def prepare(self, marks: int) -> None:
        pass

    def mark(self) -> float:
        reached = max(self.clock(), self.busy_until)
        self.busy_until = reached
        return reached

    def seconds_between(self, earlier: Any, later: Any) -> float:
        return float(later) - float(earlier)


def gpu_step(clock: FakeClock, gpu: FakeGpu, cpu_s: float, gpu_s: float) -> Any:
    """A step that queues ``gpu_s`` of device work and returns after ``cpu_s`` on the CPU."""

    def step(batch: Any) -> None:
        gpu.launch(gpu_s)
        clock.advance(cpu_s)

    return step
