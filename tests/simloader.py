"""A discrete-time simulation of a DataLoader: W workers sharing C cores (processor sharing),
``prefetch_factor`` tasks per worker, round-robin task assignment, in-order delivery, and a main
loop whose step takes ``step_s``. It produces the same raw times a real trial records, so the
estimators can be checked against the simulated whole epoch, without a clock or a process."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadertune.records.stats import BatchTimes


@dataclass
class SimLoader:
    workers: int
    cores: float
    batch_cpu_s: float
    step_s: float
    batches: int
    prefetch_factor: int = 2
    spawn_s: float = 0.01  # workers start one after another
    dt: float = 0.0005
    done: dict[int, float] = field(default_factory=dict)

    def run(self, stop_after: int | None = None) -> tuple[BatchTimes, float]:
        """Raw times for the first ``stop_after`` batches (all by default), and the epoch end."""
        queues: list[list[int]] = [[] for _ in range(self.workers)]
        left: dict[int, float] = {}
        sent = 0
        for _ in range(min(self.workers * self.prefetch_factor, self.batches)):
            queues[sent % self.workers].append(sent)
            sent += 1
        request, ready, step_end, done_s = [], [], [], []
        t, consumed, busy_until = 0.0, 0, 0.0
        limit = self.batches if stop_after is None else stop_after
        while consumed < limit:
            self._advance(queues, left, t)
            if t >= busy_until and consumed in self.done:
                request.append(busy_until)
                ready.append(t)
                done_s.append(self.done[consumed])
                if sent < self.batches:
                    queues[sent % self.workers].append(sent)
                    sent += 1
                busy_until = t + self.step_s
                step_end.append(busy_until)
                consumed += 1
            t += self.dt
        sizes = [1] * len(ready)
        return BatchTimes(request, ready, step_end, done_s, sizes), busy_until

    def _advance(self, queues: list[list[int]], left: dict[int, float], t: float) -> None:
        active = [w for w in range(self.workers) if queues[w] and t >= w * self.spawn_s]
        if not active:
            return
        speed = min(1.0, self.cores / len(active))
        for w in active:
            task = queues[w][0]
            left.setdefault(task, self.batch_cpu_s)
            left[task] -= speed * self.dt
            if left[task] <= 0:
                self.done[task] = t
                queues[w].pop(0)
