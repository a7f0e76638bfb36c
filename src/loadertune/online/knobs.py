"""Which worker knobs the user gave and which are tuned: a knob not given (``None``) is tuned,
one given is kept as given; ``in_order`` and ``multiprocessing_context`` are tuned only when
the user passes ``"auto"`` (they change what the user's code sees), and so is ``num_workers``
of an iterable dataset: every worker runs the dataset's ``__iter__``, so one that does not split
itself by ``get_worker_info()`` would yield its samples once per worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUTO = "auto"


@dataclass(frozen=True)
class Knobs:
    """The worker knobs as passed to :class:`~loadertune.online.loader.DataLoader`."""

    num_workers: int | str | None = None
    prefetch_factor: int | None = None
    persistent_workers: bool | None = None
    pin_memory: bool | None = None
    multiprocessing_context: Any = None
    in_order: bool | str = True
    iterable: bool = False  # the dataset is an IterableDataset

    def __post_init__(self) -> None:
        if isinstance(self.num_workers, str) and self.num_workers != AUTO:
            raise ValueError(f"num_workers must be a count or 'auto', got {self.num_workers!r}")
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
            if value is not None and value != AUTO:
                fixed[name] = value
        if self.num_workers is None and self.iterable:
            fixed["num_workers"] = 0
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
        workers = self.fixed(cuda).get("num_workers")
        if workers == 0:  # without workers the worker knobs mean nothing
            given = [True]
        elif workers is None:
            given = [False]
        return all(given) and AUTO not in (self.in_order, self.multiprocessing_context)

    def torch_kwargs(self) -> dict[str, Any]:
        """What torch's constructor gets (it validates them): a tuned knob at its default."""
        workers = self.num_workers if isinstance(self.num_workers, int) else 0
        context = self.multiprocessing_context
        return {
            "num_workers": workers,
            "prefetch_factor": self.prefetch_factor if workers else None,
            "persistent_workers": bool(self.persistent_workers) if workers else False,
            "pin_memory": bool(self.pin_memory),
            "multiprocessing_context": None if context == AUTO or not workers else context,
            "in_order": True if self.in_order == AUTO else self.in_order,
        }

    def given(self) -> dict[str, Any]:
        """The tuned knobs' attributes as the user passed them (see :class:`TorchKnob`)."""
        names = ("num_workers", "prefetch_factor", "persistent_workers", "pin_memory", "in_order")
        return {name: getattr(self, name) for name in names}

    def _context_name(self) -> str | None:
        context = self.multiprocessing_context
        if context is None or isinstance(context, str):
            return context
        name = getattr(context, "_name", None)  # a multiprocessing context object
        return name if isinstance(name, str) else None


class TorchKnob:
    """A worker knob's attribute on :class:`~loadertune.online.loader.DataLoader`: reading it
    gives torch's value (what torch's constructor stored, which torch's iterators use), while
    ``vars(loader)`` shows what the user passed (None or ``"auto"`` for a tuned knob). Lightning
    re-creates a loader passed to ``fit`` from ``vars()`` to inject its distributed sampler;
    torch's values there would pass a tuned knob as given (``num_workers=0``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_torch_{name}"

    def __get__(self, loader: object, owner: type | None = None) -> Any:
        if loader is None:
            return self
        try:
            return vars(loader)[self.slot]
        except KeyError:  # before torch's constructor set it
            raise AttributeError(self.slot[len("_torch_") :]) from None

    def __set__(self, loader: object, value: Any) -> None:
        vars(loader)[self.slot] = value
