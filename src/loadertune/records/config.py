"""LoaderConfig: the DataLoader knobs one trial tries."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

START_METHODS = ("fork", "forkserver", "spawn")
DEFAULT_PREFETCH_FACTOR = 2  # DataLoader's own default with workers


@dataclass(frozen=True)
class LoaderConfig:
    """The worker-side DataLoader settings under test; frozen and hashable.

    Only what differs between configurations lives here: batch size, sampler, collate_fn and
    the rest come from the workload. ``None`` for ``prefetch_factor`` means DataLoader's default
    (2 with workers); ``None`` for ``multiprocessing_context`` means the platform default.

    >>> LoaderConfig(num_workers=4, persistent_workers=True).to_kwargs()
    {'num_workers': 4, 'persistent_workers': True, 'pin_memory': False, 'prefetch_factor': 2}
    """

    num_workers: int = 0
    prefetch_factor: int | None = None
    persistent_workers: bool = False
    pin_memory: bool = False
    multiprocessing_context: str | None = None
    in_order: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {self.num_workers!r}")
        if self.prefetch_factor is not None:
            if not isinstance(self.prefetch_factor, int) or self.prefetch_factor < 1:
                raise ValueError(
                    f"prefetch_factor must be an integer >= 1, got {self.prefetch_factor!r}"
                )
            if self.num_workers == 0:
                raise ValueError("prefetch_factor needs num_workers > 0 (DataLoader rejects it)")
        if self.persistent_workers and self.num_workers == 0:
            raise ValueError("persistent_workers needs num_workers > 0 (DataLoader rejects it)")
        if self.prefetch_factor == DEFAULT_PREFETCH_FACTOR:
            object.__setattr__(self, "prefetch_factor", None)  # one config, one hash
        if self.multiprocessing_context is not None and self.num_workers == 0:
            raise ValueError(
                "multiprocessing_context needs num_workers > 0 (DataLoader rejects it)"
            )
        if self.multiprocessing_context not in (None, *START_METHODS):
            raise ValueError(
                f"multiprocessing_context must be one of {START_METHODS}, "
                f"got {self.multiprocessing_context!r}"
            )

    @property
    def in_flight_batches(self) -> int:
        """Most batches that can be requested but not yet consumed (the prefetch stock)."""
        if self.num_workers == 0:
            return 1
        return self.num_workers * (self.prefetch_factor or DEFAULT_PREFETCH_FACTOR)

    def to_kwargs(self) -> dict[str, Any]:
        """The exact worker keyword arguments for ``DataLoader(...)``.

        ``num_workers``, ``persistent_workers`` and ``pin_memory`` always; ``prefetch_factor``
        with workers (DataLoader's default 2 written out); the start method and ``in_order``
        only when they differ from the default (``in_order`` needs torch >= 2.6).
        """
        kwargs: dict[str, Any] = {
            "num_workers": self.num_workers,
            "persistent_workers": self.persistent_workers,
            "pin_memory": self.pin_memory,
        }
        if self.num_workers:
            kwargs["prefetch_factor"] = self.prefetch_factor or DEFAULT_PREFETCH_FACTOR
        if self.multiprocessing_context is not None:
            kwargs["multiprocessing_context"] = self.multiprocessing_context
        if not self.in_order:
            kwargs["in_order"] = False
        return kwargs

    def label(self) -> str:
        """A short human label, e.g. ``w=4 pf=2 persist``."""
        parts = [f"w={self.num_workers}"]
        if self.prefetch_factor is not None:
            parts.append(f"pf={self.prefetch_factor}")
        if self.persistent_workers:
            parts.append("persist")
        if self.pin_memory:
            parts.append("pin")
        if self.multiprocessing_context:
            parts.append(self.multiprocessing_context)
        if not self.in_order:
            parts.append("unordered")
        return " ".join(parts)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> LoaderConfig:
        """The inverse of :meth:`to_kwargs` (for results read back from JSON)."""
        return cls(**{k: v for k, v in kwargs.items() if k in _FIELDS})


_FIELDS = frozenset(f.name for f in fields(LoaderConfig))
