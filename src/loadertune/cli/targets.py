"""Load the objects users name as ``path/to/file.py:name`` or ``pkg.mod:name``.

A file is imported as a real top-level module (its stem), with its directory at the front of
``sys.path``, so classes defined there pickle by reference and DataLoader workers started with
``spawn`` or ``forkserver`` can import them again. Every failure is a one-line ``UsageError``
that starts with the spec the user typed.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from loadertune.records.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeGuard

    from torch.utils.data import DataLoader, Dataset

# Enough names to spot a typo in, few enough to keep the message on one readable line.
MAX_CANDIDATES = 10
FORMS = "expected path/to/file.py:name or package.module:name"


def load_target(spec: str) -> object:
    """Import what ``spec`` names and return it; raise ``UsageError`` saying what went wrong.

    ``spec`` is ``FILE:NAME`` when the part before the last ``:`` ends in ``.py`` or holds a
    path separator, else ``MODULE:NAME``; ``NAME`` may be dotted.

    >>> load_target("json:decoder.JSONDecoder")
    <class 'json.decoder.JSONDecoder'>
    """
    location, name = _split(spec)
    importer = _import_file if _is_file(location) else _import_module
    module = importer(spec, location)
    return _walk(spec, module, name)


def resolve_data(obj: object, spec: str) -> Dataset[Any] | DataLoader[Any]:
    """Return ``obj`` if it is a dataset or DataLoader, else call it with no arguments.

    A dataset is a ``Dataset`` (map-style or iterable), or any non-class object with both
    ``__getitem__`` and ``__len__`` (DataLoader accepts those too; returned unchanged, although
    typed as ``Dataset``). A class or function is called once, with no arguments.

    >>> resolve_data(lambda: [1, 2, 3], "data.py:make")
    [1, 2, 3]
    """
    if _is_data(obj):
        return obj
    if callable(obj):
        made = _call_without_arguments(obj, spec)
        if _is_data(made):
            return made
        name = spec.rpartition(":")[2]
        raise UsageError(f"{spec}: {name}() returned {_what_instead(made)}")
    raise UsageError(f"{spec} is {_what_instead(obj)}")


def _what_instead(obj: object) -> str:
    """What a target that is no data is, and what to pass instead."""
    from loadertune.engine.loaderlike import describe_iterable

    iterable = describe_iterable(obj)
    if iterable is not None:
        return iterable
    return (
        f"a {type(obj).__name__}, not a Dataset or DataLoader "
        "(or a zero-argument callable returning one)"
    )


def resolve_step(obj: object, spec: str) -> Callable[[Any], Any]:
    """Return ``obj`` if it can be called with one batch; it is never called here.

    Functions, bound methods and instances with ``__call__`` qualify (for an ``nn.Module`` the
    signature of ``forward`` is checked). A class does not: it is not instantiated.

    >>> resolve_step(print, "builtins:print") is print
    True
    """
    if isinstance(obj, type):
        raise UsageError(
            f"{spec} is a class; give a function of one batch or an instance with __call__"
        )
    if not callable(obj):
        raise UsageError(f"{spec} is a {type(obj).__name__}, not a function of one batch")
    if not _accepts_positional(_signature_owner(obj), 1):
        raise UsageError(f"{spec} must take one argument (the batch)")
    return obj


def _split(spec: str) -> tuple[str, str]:
    location, colon, name = spec.rpartition(":")
    if not colon or not location or not name:
        raise UsageError(f"{spec}: {FORMS}")
    if not _is_dotted(name):
        raise UsageError(f"{spec}: {name!r} is not a dotted Python name")
    return location, name


def _is_dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _is_file(location: str) -> bool:
    return location.endswith(".py") or "/" in location or os.sep in location


def _import_file(spec: str, location: str) -> ModuleType:
    given = Path(location)
    if not given.is_file():
        raise UsageError(f"{spec}: no such file: {location}")
    path = given.parent.resolve() / given.name
    name = path.stem
    if "." in name:
        raise UsageError(f"{spec}: {path.name} cannot be imported by name; rename it (no dots)")
    existing = sys.modules.get(name)
    if existing is not None:
        if _is_same_file(getattr(existing, "__file__", None), path):
            return existing
        raise _name_taken(spec, location, name, getattr(existing, "__file__", None) or "built in")
    added = _prepend_sys_path(str(path.parent))
    try:
        return _import_file_by_name(spec, location, name, path)
    except BaseException:
        if added:  # leave sys.path as we found it when the import fails
            sys.path.remove(str(path.parent))
        raise


def _import_file_by_name(spec: str, location: str, name: str, path: Path) -> ModuleType:
    # Workers re-import the module by name through sys.path; make sure that finds this file.
    importlib.invalidate_caches()
    found = importlib.util.find_spec(name)
    origin = found.origin if found is not None else None
    if not _is_same_file(origin, path):
        raise _name_taken(spec, location, name, origin or "built in")
    try:
        return importlib.import_module(name)
    except (Exception, SystemExit) as exc:
        raise _raised(spec, f"importing {location}", exc) from exc


def _name_taken(spec: str, location: str, name: str, where: str) -> UsageError:
    return UsageError(
        f"{spec}: the module name {name!r} already means {where}; "
        f"rename {location} so its name is unique"
    )


def _is_same_file(location: str | None, path: Path) -> bool:
    try:
        return location is not None and Path(location).samefile(path)
    except OSError:
        return False


def _prepend_sys_path(directory: str) -> bool:
    if directory in sys.path:
        return False
    sys.path.insert(0, directory)
    return True


def _import_module(spec: str, module_name: str) -> ModuleType:
    if not _is_dotted(module_name):
        raise UsageError(f"{spec}: {module_name!r} is neither a .py file nor a module; {FORMS}")
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and f"{module_name}.".startswith(f"{exc.name}."):
            raise UsageError(
                f"{spec}: no module named {module_name!r} (is it installed, or on PYTHONPATH?)"
            ) from exc
        raise _raised(spec, f"importing {module_name}", exc) from exc
    except (Exception, SystemExit) as exc:
        raise _raised(spec, f"importing {module_name}", exc) from exc


def _raised(spec: str, doing: str, exc: BaseException) -> UsageError:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    hint = ""
    if isinstance(exc, SystemExit):
        hint = " (does it run a script at import? guard that with if __name__ == '__main__')"
    return UsageError(f"{spec}: {doing} raised {type(exc).__name__}: {text}{hint}")


def _walk(spec: str, module: ModuleType, name: str) -> object:
    obj: object = module
    walked = module.__name__
    for part in name.split("."):
        if not hasattr(obj, part):
            owner = f"module {walked!r}" if obj is module else repr(walked)
            raise UsageError(f"{spec}: {owner} has no attribute {part!r}{_candidates_hint(obj)}")
        obj = getattr(obj, part)
        walked = f"{walked}.{part}"
    return obj


def _candidates_hint(owner: object) -> str:
    names = _candidates(owner)
    if not names:
        return ""
    more = ", ..." if len(names) > MAX_CANDIDATES else ""
    return f"; it has: {', '.join(names[:MAX_CANDIDATES])}{more}"


def _candidates(owner: object) -> list[str]:
    """Public names in ``owner`` a user might have meant: data objects, or its own code."""
    home = owner.__name__ if isinstance(owner, ModuleType) else getattr(owner, "__module__", None)
    found = []
    for name in sorted(dir(owner)):
        value = getattr(owner, name, None) if not name.startswith("_") else None
        is_code = inspect.isclass(value) or inspect.isroutine(value)
        if value is not None and (_is_data(value) or (is_code and value.__module__ == home)):
            found.append(name)
    return found


def _is_data(obj: object) -> TypeGuard[Dataset[Any] | DataLoader[Any]]:
    from torch.utils.data import DataLoader, Dataset

    if isinstance(obj, (Dataset, DataLoader)):
        return True
    # str has __getitem__ and __len__ too, but a path string is a mistake, not a dataset.
    duck_typed = hasattr(obj, "__getitem__") and hasattr(obj, "__len__")
    return duck_typed and not isinstance(obj, (type, str, bytes))


def _call_without_arguments(func: Callable[..., object], spec: str) -> object:
    if not _accepts_positional(func, 0):
        raise UsageError(f"{spec} needs arguments; give an instance or a zero-argument function")
    try:
        return func()
    except Exception as exc:
        name = spec.rpartition(":")[2]
        raise _raised(spec, f"calling {name}()", exc) from exc


def _accepts_positional(func: Callable[..., object], count: int) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return True  # no signature to read (some builtins): the call itself will tell
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True


def _signature_owner(step: Callable[..., object]) -> Callable[..., object]:
    """The callable whose signature says how ``step`` is called (``forward`` for a module)."""
    from torch import nn

    if isinstance(step, nn.Module):
        forward: Callable[..., object] = step.forward
        return forward
    return step
