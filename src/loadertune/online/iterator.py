"""One epoch of an online loader: the relay's batches, unwrapped for the user's loop, each
config's stretch recorded, the controller asked after each batch of the active stretch."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from loadertune.engine.backends.dataloader import dead_workers
from loadertune.engine.cpu import tree_cpu_seconds
from loadertune.engine.failures import WORKER_DIED_MARKERS, first_line
from loadertune.engine.memwatch import MemoryLimitExceeded
from loadertune.engine.recorder import Recorder
from loadertune.online.feed import Feed, epoch_length
from loadertune.online.relay import Relay, Stage, StageFailed
from loadertune.online.stages import StagePool
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import Trial

log = logging.getLogger("loadertune")
MAX_FALLBACKS = 4  # configs that may fail one after another within one next() before giving up
DEATH_NOTICE_S = 1.0  # a closed pipe waits this long for its worker's death to be reported


class OnlineIterator(Iterator[Any]):
    """``loader``: the online DataLoader (its sampler, controller and stage log)."""

    def __init__(self, loader: Any, pool: StagePool, epoch: int) -> None:
        self.loader, self.pool, self.epoch = loader, pool, epoch
        self.controller = loader.controller
        self.iterable = pool.settings.iterable
        self.length = epoch_length(loader)
        self.feed = Feed(() if self.iterable else loader._index_sampler, self.length)
        self.relay = Relay()
        self.trials: list[Trial] = []
        loader.stages.append(self.trials)
        self._open: Recorder | None = None
        self._position = 0
        self._ended = False
        self._switch(self.controller.first(epoch))

    def __next__(self) -> Any:
        if self._ended:
            raise StopIteration
        if self._open is not None:
            self._open.finish()  # the user's step on the last batch ended as it asked again
            if not self.iterable:  # asked at every position (under ranks, check-ins are
                self._ask(self._active.trial)  # by position, whichever stage delivered)
            self._open = None
        upcoming = self.relay.retiring[0] if self.relay.retiring else self.relay.active
        if upcoming is not None:
            upcoming.recorder.requested()
        try:
            stage, item = self._next_batch()
        except StopIteration:
            self._end(whole=True)
            raise
        except BaseException:
            self._end(whole=False)
            raise
        recorder: Recorder = stage.recorder
        if stage is not upcoming:
            recorder.requested()  # a retiring stage ran out in between: asked of this one now
        recorder.received(item)
        self._open = recorder
        self._position += 1
        return item.batch

    def _next_batch(self) -> tuple[Stage, Any]:
        """The relay's next batch; a config whose loader broke (a worker died, torch's timeout)
        is replaced by the controller's fallback, its undelivered positions handed out again.
        Anything else was raised by the user's code: it reaches the user as raised."""
        for _ in range(MAX_FALLBACKS):
            try:
                self._check_memory()
                return next(self.relay)
            except StageFailed as failure:
                if not stage_broke(failure) or not failure.stage.config.in_order:
                    raise failure.error from None
                self._fall_back(failure)
        raise RuntimeError(f"loadertune: {MAX_FALLBACKS} configs failed in a row; giving up")

    def _check_memory(self) -> None:
        """A stage whose config passed the memory limit fails as a broken config would."""
        if self.pool.settings.max_memory_bytes is None:
            return  # nothing watched: nothing to read on each batch
        for stage in [*self.relay.retiring, *([self.relay.active] if self.relay.active else [])]:
            reason = self.pool.over_limit(stage)
            if reason is not None:
                raise StageFailed(stage, MemoryLimitExceeded(reason))

    def _fall_back(self, failure: StageFailed) -> None:
        dropped = self.relay.drop_from(failure.stage)
        pending = [item for stage in dropped for item in stage.tap.pending]
        for stage in dropped:
            stage.tap.close()
            self.pool.discard(stage)
        self.feed.requeue(pending)
        config = self.controller.failed(failure.stage.config, str(failure.error))
        log.warning(
            "%s failed (%s); falling back to %s, its %d undelivered batches fetched again",
            failure.stage.config.label(),
            first_line(failure.error),
            config.label(),
            len(pending),
        )
        self._switch(config)

    def _ask(self, trial: Trial) -> None:
        decision = self.controller.after(trial, self._position - 1, self.feed.left)
        if decision is not None and decision != trial.config:  # the same config: stay
            self._switch(decision)
        self.loader.tell_if_settled()

    def _switch(self, config: LoaderConfig) -> None:
        trial = Trial(config, repeat=len(self.trials), epoch_batches=self.length)
        recorder = Recorder(trial)
        self.trials.append(trial)
        cpu = tree_cpu_seconds()  # read before the stretch's clock starts
        recorder.begin()
        trial.cpu.append((0.0, cpu))
        self.feed.stamp_into(trial.handed_s, recorder.start)
        stage = self.relay.switch(lambda: self.pool.start(config, self.feed))
        stage.recorder = recorder
        self._active = recorder

    def _end(self, *, whole: bool) -> None:
        """The epoch ended (``whole``) or the loop failed: every stage stopped, the stretches
        kept; the active stretch told to the controller."""
        self._ended = True
        self.relay.close()
        recorder = self._active
        if whole:
            if recorder.trial.repeat == 0 and self._position == recorder.trial.batches:
                recorder.ended()  # the stretch was the whole epoch: measured whole
            self.loader.epoch_ended(recorder.trial, self.epoch)
        for trial in self.trials:
            trial.trim()
            trial.round_raw()

    def end_if_handed_out(self, cut: bool = False) -> None:
        """The loop took every batch of the epoch but never asked past the last (Lightning's
        loops stop at the epoch's length), or (``cut``) its epoch ended early by its own
        rule: the epoch ended whole, its last step untimed (what came after it, validation
        say, is not the step's)."""
        if self._ended or self.iterable or self.length is None:
            return
        if cut or self._position >= self.length:
            self._open = None
            self._end(whole=True)

    def close(self) -> None:
        """The loop left before the epoch's end: stop its stages now (an epoch it took whole
        still counts whole)."""
        self.end_if_handed_out()
        if not self._ended:
            self._end(whole=False)

    def __del__(self) -> None:
        try:
            if not sys.is_finalizing():
                with self.pool.collected():
                    self.close()
        except Exception:  # noqa: BLE001, S110 - at exit, module names may be gone
            pass  # (multiprocessing then terminates the workers itself)


def stage_broke(failure: StageFailed) -> bool:
    """The config's loader broke: it passed the memory limit, torch said a worker died or
    timed out, or the pipe to a worker closed as a worker of it lay dead (a killed worker's
    half-sent batch)."""
    if isinstance(failure.error, MemoryLimitExceeded) or loader_broke(failure.error):
        return True
    if not isinstance(failure.error, ConnectionError | EOFError):
        return False
    deadline = time.monotonic() + DEATH_NOTICE_S
    try:
        while not dead_workers(failure.stage.iterator):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
    except RuntimeError as notice:  # torch's SIGCHLD handler says so, in whatever code runs
        return loader_broke(notice)
    return True


def loader_broke(error: BaseException) -> bool:
    """A worker died or torch's loader timed out: the config's fault, not the user's code."""
    text = str(error)
    died = any(marker in text for marker in WORKER_DIED_MARKERS)
    return isinstance(error, RuntimeError) and (died or "DataLoader timed out" in text)
