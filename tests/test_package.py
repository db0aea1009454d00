"""The package's public surface: lazy exports and a fast, torch-free import."""

from __future__ import annotations

import subprocess
import sys

import fasttok_plugin


def test_unknown_attribute_raises_attribute_error() -> None:
    try:
        fasttok_plugin.definitely_not_exported  # noqa: B018
    except AttributeError as exc:
        assert "definitely_not_exported" in str(exc)
    else:  # pragma: no cover - the assertion is the point
        raise AssertionError("expected AttributeError")


def test_import_does_not_pull_torch_or_lightning() -> None:
    code = "import sys, fasttok_plugin; print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
