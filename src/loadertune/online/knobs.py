"""Which worker knobs the user gave and which are tuned: a knob not given (``None``) is tuned,
one given is kept as given; ``in_order`` and ``multiprocessing_context`` are tuned only when
the user passes ``"auto"`` (they change what the user's code sees)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUTO = "auto"


@dataclass(frozen=True)
class Knobs:
    """The worker knobs as passed to :class:`~loadertune.online.loader.DataLoader`."""

    num_workers: int | None = None
    prefetch_factor: int | None = None
    persistent_workers: bool | None = None
    pin_memory: bool | None = None
    multiprocessing_context: Any = None
    in_order: bool | str = True

    def __post_init__(self) -> None:
        if isinstance(self.in_order, str) and self.in_order != AUTO:
            raise ValueError(f"in_order must be True, False or 'auto', got {self.in_order!r}")
        context = self.multiprocessing_context
        if isinstance(context, str) and context not in (AUTO, "fork", "forkserver", "spawn"):
            raise ValueError(
                "multiprocessing_context must be fork, forkserver, spawn or 'auto', "
                f"got {context!r}"
            )

    def fixed(self, cuda: bool) -> dict[str, Any]:
        """The LoaderConfig fields the search may not change, with their values."""
        fixed: dict[str, Any] = {}
        for name in ("num_workers", "prefetch_factor", "persistent_workers"):
            value = getattr(self, name)
            if value is not None:
                fixed[name] = value
        if self.pin_memory is not None or not cuda:  # pinning only pays with a GPU
            fixed["pin_memory"] = bool(self.pin_memory)
        if self.in_order != AUTO:
            fixed["in_order"] = bool(self.in_order)
        if self.multiprocessing_context != AUTO:
            fixed["multiprocessing_context"] = self._context_name()
        return fixed

    def all_given(self, cuda: bool) -> bool:
        """Nothing to tune: the loader is torch's."""
        tuned = ("num_workers", "prefetch_factor", "persistent_workers", "pin_memory")
        given = [getattr(self, n) is not None for n in tuned if n != "pin_memory" or cuda]
        if not self.num_workers:  # without workers the worker knobs mean nothing
            given = [self.num_workers is not None]
        return all(given) and AUTO not in (self.in_order, self.multiprocessing_context)

    def torch_kwargs(self) -> dict[str, Any]:
        """What torch's constructor gets (it validates them): a tuned knob at its default."""
        workers = self.num_workers or 0
        context = self.multiprocessing_context
        return {
            "num_workers": workers,
            "prefetch_factor": self.prefetch_factor if workers else None,
            "persistent_workers": bool(self.persistent_workers) if workers else False,
            "pin_memory": bool(self.pin_memory),
            "multiprocessing_context": None if context == AUTO or not workers else context,
            "in_order": True if self.in_order == AUTO else self.in_order,
        }

    def _context_name(self) -> str | None:
        context = self.multiprocessing_context
        if context is None or isinstance(context, str):
            return context
        name = getattr(context, "_name", None)  # a multiprocessing context object
        return name if isinstance(name, str) else None
