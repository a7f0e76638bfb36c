from __future__ import annotations

import subprocess
import sys
import types

import loadertune


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(loadertune).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public -= {"annotations", "importlib", "Any"}
    public |= set(loadertune._LAZY)
    assert loadertune.__all__ == sorted(loadertune.__all__)
    assert set(loadertune.__all__) - {"__version__"} == public


def test_the_online_loader_is_torchs_dataloader() -> None:
    from torch.utils.data import DataLoader as TorchDataLoader

    assert issubclass(loadertune.DataLoader, TorchDataLoader)
    assert "DataLoader" in dir(loadertune)


def test_importing_the_cli_does_not_import_torch() -> None:
    code = "import loadertune.cli, sys; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
