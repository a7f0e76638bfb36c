"""LoaderConfig: the DataLoader knobs one trial tries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

START_METHODS = ("fork", "forkserver", "spawn")


@dataclass(frozen=True)
class LoaderConfig:
    """The worker-side DataLoader settings under test; frozen and hashable.

    Only what differs between configurations lives here: batch size, sampler, collate_fn and
    the rest come from the workload. ``None`` for ``prefetch_factor`` means DataLoader's default
    (2 with workers); ``None`` for ``multiprocessing_context`` means the platform default.

    >>> LoaderConfig(num_workers=4, persistent_workers=True).to_kwargs()
    {'num_workers': 4, 'persistent_workers': True}
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
        return self.num_workers * (self.prefetch_factor or 2)

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``DataLoader(...)``; defaults are left out."""
        defaults = asdict(LoaderConfig())
        return {k: v for k, v in asdict(self).items() if v != defaults[k]}

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
        return cls(**kwargs)
