"""The user's DataLoader class (torch's, or a subclass such as torchdata's StatefulDataLoader):
rebuilt with its own constructor arguments for every config, so what is measured is what the
user runs; and the samplers that class makes by itself, which are not the user's to pass again.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any

JSON_SCALARS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class LoaderClass:
    """The class every trial's loader is built with, and its constructor arguments beyond
    torch's ``DataLoader`` ones (read off the user's loader). ``fallback`` says why the user's
    class could not be rebuilt, in which case ``cls`` is torch's ``DataLoader``."""

    cls: type
    extras: dict[str, Any] = field(default_factory=dict)
    fallback: str | None = None

    @property
    def name(self) -> str:
        return self.cls.__name__

    def build(self, **kwargs: Any) -> Any:
        return self.cls(**kwargs, **self.extras)

    def probe(self, **kwargs: Any) -> Any:
        """Build one to look at, not to run: its warnings (a library's deprecation notices)
        are the trials' to report, not this look's."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.build(**kwargs)

    def given_extras(self) -> dict[str, Any]:
        """The extras whose values differ from the class's defaults: what the user passed."""
        defaults = _parameters(self.cls)
        return {
            k: v
            for k, v in self.extras.items()
            if k not in defaults
            or defaults[k].default is inspect.Parameter.empty
            or defaults[k].default != v
        }

    def made_samplers(self, dataset: Any) -> dict[str, type]:
        """The sampler classes this class makes by itself for ``shuffle=False`` and ``True``,
        and its batch sampler class: ``sequential``, ``random`` and ``batch``."""
        from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

        torch_made = {
            "sequential": SequentialSampler,
            "random": RandomSampler,
            "batch": BatchSampler,
        }
        made = dict(torch_made)
        try:
            for name, shuffle in (("sequential", False), ("random", True)):
                reference = self.probe(dataset=dataset, batch_size=2, shuffle=shuffle)
                made[name] = type(reference.sampler)
                made["batch"] = type(reference.batch_sampler)
        except Exception:  # noqa: BLE001 - a class that cannot make them keeps torch's
            return torch_made
        return made


def loader_class(loader: Any, base: dict[str, Any]) -> LoaderClass:
    """How to rebuild ``loader``'s own class with ``base`` (the fixed settings) and other
    worker knobs; torch's ``DataLoader`` with the reason, where it cannot be."""
    from torch.utils.data import DataLoader

    cls = type(loader)
    if cls is DataLoader:
        return LoaderClass(DataLoader)
    extras, missing = _extras(cls, loader)
    if missing:
        return _fallback(cls, f"its argument {missing!r} is not kept on the loader")
    candidate = LoaderClass(cls, extras)
    try:
        candidate.probe(**base)
    except Exception as exc:  # noqa: BLE001 - whatever the class raises, say it and go on
        return _fallback(cls, f"rebuilding it raised {type(exc).__name__}: {exc}")
    return candidate


def _fallback(cls: type, why: str) -> LoaderClass:
    from torch.utils.data import DataLoader

    return LoaderClass(
        DataLoader,
        fallback=f"measured torch's DataLoader with your loader's settings, not your "
        f"{cls.__name__}: {why}",
    )


def _extras(cls: type, loader: Any) -> tuple[dict[str, Any], str | None]:
    """The constructor arguments of ``cls`` that torch's DataLoader does not take, as kept
    on ``loader`` under their own names; the first required one that is not kept, if any."""
    from torch.utils.data import DataLoader

    own = _parameters(DataLoader)
    extras: dict[str, Any] = {}
    for name, parameter in _parameters(cls).items():
        if name in own or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if hasattr(loader, name):
            extras[name] = getattr(loader, name)
        elif parameter.default is parameter.empty:
            return {}, name
    return extras, None


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    try:
        parameters = dict(inspect.signature(cls.__init__).parameters)  # type: ignore[misc]
    except (TypeError, ValueError):
        return {}
    parameters.pop("self", None)
    return parameters


def is_json_scalar(value: Any) -> bool:
    return isinstance(value, JSON_SCALARS)
