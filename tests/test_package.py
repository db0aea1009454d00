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
