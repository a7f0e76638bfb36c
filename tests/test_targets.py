"""load_target / resolve_data / resolve_step, on real files written under tmp_path."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from torch.utils.data import DataLoader, Dataset

from loadertune.cli.targets import load_target, resolve_data, resolve_step
from loadertune.records.errors import UsageError

SQUARES = """
from torch.utils.data import DataLoader, Dataset

class Squares(Dataset):
    def __init__(self, n=4):
        self.n = n
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        return i * i

squares = Squares()
loader = DataLoader(squares, batch_size=2)
_private = Squares(1)

def make():
    return Squares(3)

class Factory:
    @staticmethod
    def build():
        return Squares(2)
"""

ODD_DATA = """
from torch.utils.data import IterableDataset

class Pairs:
    def __len__(self):
        return 3
    def __getitem__(self, i):
        return (i, -i)

class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(3))

pairs = Pairs()
numbers = [1, 2, 3]
stream = Stream()
COUNT = 3
DATA_DIR = "data/"

def needs(n):
    return [0] * n

def boom():
    raise RuntimeError("disk on fire")

def wrong():
    return 5
"""

STEPS = """
from torch import nn

def step(batch):
    return batch

def step_with_options(batch, lr=0.1):
    return batch

def explode(batch):
    raise AssertionError("resolve_step must never call the step")

def no_args():
    return None

def two_args(batch, model):
    return None

class Model(nn.Module):
    def forward(self, x):
        return x

class Pair(nn.Module):
    def forward(self, x, y):
        return x

class Step:
    def __call__(self, batch):
        return batch

model = Model()
pair = Pair()
step_instance = Step()
NOT_CALLABLE = 3
"""


@pytest.fixture(autouse=True)
def restore_imports(tmp_path: Path) -> Iterator[None]:
    """Leave sys.path and sys.modules as they were: drop modules imported from tmp_path."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    yield
    sys.path[:] = saved_path
    root = str(tmp_path.resolve())
    for name in set(sys.modules) - saved_modules:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(root):
            del sys.modules[name]


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def usage_error(spec: str) -> str:
    """The message load_target raises for ``spec``, checked to be one line led by the spec."""
    with pytest.raises(UsageError) as info:
        load_target(spec)
    message = str(info.value)
    assert message.startswith(spec)
    assert "\n" not in message
    return message


# --- file and module targets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "length"),
    [("squares", 4), ("make", 3), ("Squares", 4), ("Factory.build", 2)],
)
def test_file_target_gives_a_dataset(tmp_path: Path, name: str, length: int) -> None:
    spec = f"{write(tmp_path, 'squares_data.py', SQUARES)}:{name}"
    data = resolve_data(load_target(spec), spec)
    assert isinstance(data, Dataset)
    assert len(data) == length


def test_file_target_gives_a_dataloader(tmp_path: Path) -> None:
    spec = f"{write(tmp_path, 'squares_data.py', SQUARES)}:loader"
    loader = resolve_data(load_target(spec), spec)
    assert isinstance(loader, DataLoader)
    assert [batch.tolist() for batch in loader] == [[0, 1], [4, 9]]


def test_file_is_imported_as_a_top_level_module(tmp_path: Path) -> None:
    path = write(tmp_path, "squares_data.py", SQUARES)
    squares = load_target(f"{path}:squares")
    assert sys.path[0] == str(tmp_path.resolve())
    assert Path(sys.modules["squares_data"].__file__ or "").samefile(path)
    # By reference: the class is found again by module name, as a spawned worker finds it.
    copy = pickle.loads(pickle.dumps(squares))  # noqa: S301 - our own bytes
    assert type(copy) is type(squares)


def test_loading_a_file_twice_imports_it_once(tmp_path: Path) -> None:
    spec = f"{write(tmp_path, 'squares_data.py', SQUARES)}:squares"
    assert load_target(spec) is load_target(spec)
    assert sys.path.count(str(tmp_path.resolve())) == 1


def test_relative_file_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "sub/nested_data.py", SQUARES)
    write(tmp_path, "flat_data.py", SQUARES)
    monkeypatch.chdir(tmp_path)
    assert len(resolve_data(load_target("sub/nested_data.py:make"), "make")) == 3  # type: ignore[arg-type]
    assert len(resolve_data(load_target("flat_data.py:make"), "make")) == 3  # type: ignore[arg-type]


def test_module_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "targets_pkg/__init__.py", "")
    write(tmp_path, "targets_pkg/data.py", SQUARES)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "targets_pkg.data:Factory.build"
    data = resolve_data(load_target(spec), spec)
    assert type(data).__module__ == "targets_pkg.data"
    assert len(data) == 2  # type: ignore[arg-type]


@pytest.fixture
def fresh_forkserver() -> Iterator[None]:
    """A forkserver copies sys.path once, when it starts: stop any running one, before and after."""
    stop = multiprocessing.forkserver._forkserver._stop  # type: ignore[attr-defined]
    stop()
    yield
    stop()


@pytest.mark.workers
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.usefixtures("fresh_forkserver")
def test_workers_can_import_a_file_target(tmp_path: Path, method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available on this platform")
    spec = f"{write(tmp_path, f'workers_{method}.py', SQUARES)}:Squares"
    dataset = resolve_data(load_target(spec), spec)
    loader = DataLoader(dataset, batch_size=2, num_workers=1, multiprocessing_context=method)
    assert [batch.tolist() for batch in loader] == [[0, 1], [4, 9]]


# --- load_target errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("squares_data.py", "expected path/to/file.py:name or package.module:name"),
        ("squares_data.py:", "expected path/to/file.py:name or package.module:name"),
        (":squares", "expected path/to/file.py:name or package.module:name"),
        ("squares_data.py:a..b", "'a..b' is not a dotted Python name"),
        ("my-pkg:x", "'my-pkg' is neither a .py file nor a module; expected path/to/file.py:name"),
    ],
)
def test_malformed_specs(spec: str, expected: str) -> None:
    assert usage_error(spec).startswith(f"{spec}: {expected}")


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.py"
    assert usage_error(f"{path}:data") == f"{path}:data: no such file: {path}"


def test_file_that_raises_on_import(tmp_path: Path) -> None:
    path = write(tmp_path, "broken_data.py", "raise ValueError('bad config')\n")
    spec = f"{path}:data"
    with pytest.raises(UsageError) as info:
        load_target(spec)
    assert str(info.value) == f"{spec}: importing {path} raised ValueError: bad config"
    assert isinstance(info.value.__cause__, ValueError)
    assert "broken_data" not in sys.modules
    assert str(tmp_path.resolve()) not in sys.path


def test_file_that_exits_on_import(tmp_path: Path) -> None:
    spec = f"{write(tmp_path, 'script_data.py', 'import sys; sys.exit(2)')}:data"
    assert "raised SystemExit: 2 (does it run a script at import?" in usage_error(spec)


def test_missing_module() -> None:
    spec = "nosuch_pkg_xyz.mod:data"
    expected = "no module named 'nosuch_pkg_xyz.mod' (is it installed, or on PYTHONPATH?)"
    assert usage_error(spec) == f"{spec}: {expected}"


@pytest.mark.parametrize(
    ("source", "raised"),
    [
        (
            "import nosuch_dependency_xyz",
            "ModuleNotFoundError: No module named 'nosuch_dependency_xyz'",
        ),
        ("raise ValueError('bad\\nconfig')", "ValueError: bad config"),
    ],
)
def test_module_that_raises_on_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, raised: str
) -> None:
    write(tmp_path, "raising_pkg/__init__.py", "")
    write(tmp_path, "raising_pkg/data.py", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "raising_pkg.data:data"
    assert usage_error(spec) == f"{spec}: importing raising_pkg.data raised {raised}"


def test_missing_attribute_lists_candidates(tmp_path: Path) -> None:
    spec = f"{write(tmp_path, 'squares_data.py', SQUARES)}:sqaures"
    expected = (
        "module 'squares_data' has no attribute 'sqaures'; "
        "it has: Factory, Squares, loader, make, squares"  # not the imported Dataset, DataLoader
    )
    assert usage_error(spec) == f"{spec}: {expected}"


def test_missing_nested_attribute(tmp_path: Path) -> None:
    spec = f"{write(tmp_path, 'squares_data.py', SQUARES)}:Factory.nope"
    expected = "'squares_data.Factory' has no attribute 'nope'; it has: build"
    assert usage_error(spec) == f"{spec}: {expected}"


def test_candidates_are_capped(tmp_path: Path) -> None:
    source = "".join(f"def make_{i:02}():\n    pass\n" for i in range(12))
    message = usage_error(f"{write(tmp_path, 'many_data.py', source)}:nope")
    names = ", ".join(f"make_{i:02}" for i in range(10))
    assert message.endswith(f"; it has: {names}, ...")


def test_two_files_with_the_same_stem(tmp_path: Path) -> None:
    first = write(tmp_path, "a/same_data.py", SQUARES)
    second = write(tmp_path, "b/same_data.py", SQUARES)
    load_target(f"{first}:squares")
    message = usage_error(f"{second}:squares")
    assert f"'same_data' already means {first}" in message
    assert f"rename {second}" in message


def test_stem_of_an_imported_module(tmp_path: Path) -> None:
    spec = f"{write(tmp_path, 'json.py', SQUARES)}:squares"
    assert f"rename {tmp_path / 'json.py'} so its name is unique" in usage_error(spec)


def test_stem_shadowed_by_a_package_beside_it(tmp_path: Path) -> None:
    # Workers would import the package, not the file, by that name.
    write(tmp_path, "shadowed_data/__init__.py", "")
    spec = f"{write(tmp_path, 'shadowed_data.py', SQUARES)}:squares"
    assert "rename" in usage_error(spec)
    assert str(tmp_path.resolve()) not in sys.path


# --- resolve_data --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pairs", "numbers", "stream"])
def test_duck_typed_and_iterable_datasets_are_accepted(tmp_path: Path, name: str) -> None:
    spec = f"{write(tmp_path, 'odd_data.py', ODD_DATA)}:{name}"
    obj = load_target(spec)
    assert resolve_data(obj, spec) is obj
    assert len(list(DataLoader(obj, batch_size=2))) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("COUNT", "{spec} is a int, not a Dataset or DataLoader"),
        ("DATA_DIR", "{spec} is a str, not a Dataset or DataLoader"),
        ("needs", "{spec} needs arguments; give an instance or a zero-argument function"),
        ("boom", "{spec}: calling boom() raised RuntimeError: disk on fire"),
        ("wrong", "{spec}: wrong() returned a int, not a Dataset or DataLoader"),
    ],
)
def test_resolve_data_errors(tmp_path: Path, name: str, expected: str) -> None:
    spec = f"{write(tmp_path, 'odd_data.py', ODD_DATA)}:{name}"
    with pytest.raises(UsageError) as info:
        resolve_data(load_target(spec), spec)
    assert str(info.value).startswith(expected.format(spec=spec))


def test_resolve_data_keeps_the_cause(tmp_path: Path) -> None:
    spec = f"{write(tmp_path, 'odd_data.py', ODD_DATA)}:boom"
    with pytest.raises(UsageError) as info:
        resolve_data(load_target(spec), spec)
    assert isinstance(info.value.__cause__, RuntimeError)


# --- resolve_step --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["step", "step_with_options", "explode", "model", "step_instance"])
def test_steps_of_one_argument_are_returned_uncalled(tmp_path: Path, name: str) -> None:
    spec = f"{write(tmp_path, 'steps.py', STEPS)}:{name}"
    step = load_target(spec)
    assert resolve_step(step, spec) is step


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("no_args", "{spec} must take one argument (the batch)"),
        ("two_args", "{spec} must take one argument (the batch)"),
        ("pair", "{spec} must take one argument (the batch)"),
        ("NOT_CALLABLE", "{spec} is a int, not a function of one batch"),
        ("Model", "{spec} is a class; give a function of one batch or an instance with __call__"),
    ],
)
def test_resolve_step_errors(tmp_path: Path, name: str, expected: str) -> None:
    spec = f"{write(tmp_path, 'steps.py', STEPS)}:{name}"
    with pytest.raises(UsageError) as info:
        resolve_step(load_target(spec), spec)
    assert str(info.value) == expected.format(spec=spec)
