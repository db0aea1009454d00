"""The package's public surface: lazy exports and a fast, torch-free import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fasttok_plugin


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="definitely_not_exported"):
        fasttok_plugin.definitely_not_exported  # noqa: B018


def test_import_does_not_pull_torch_or_lightning() -> None:
    code = "import sys, fasttok_plugin; print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("name", sorted(set(fasttok_plugin.__all__) - {"__version__"}))
def test_every_public_name_resolves_to_the_module_that_defines_it(name: str) -> None:
    value = getattr(fasttok_plugin, name)
    assert getattr(value, "__name__", name) == name
    assert name in dir(fasttok_plugin)
