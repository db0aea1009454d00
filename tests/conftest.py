"""Shared fixtures: real LeRobot datasets and mixture files written under ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from fasttok_plugin.testing import (
    SyntheticDataset,
    make_example_mixture,
    write_lerobot_dataset,
    write_mixture,
)


@pytest.fixture
def lerobot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$HF_LEROBOT_HOME`` under ``tmp_path`` (so default roots never touch the real cache)."""
    home = tmp_path / "hf_lerobot_home"
    home.mkdir()
    monkeypatch.setenv("HF_LEROBOT_HOME", str(home))
    return home


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., SyntheticDataset]:
    """Factory ``make_dataset(name, **kwargs)`` writing a LeRobot dataset to ``tmp_path/datasets/<name>``.

    ``kwargs`` are those of :func:`fasttok_plugin.testing.write_lerobot_dataset`; ``root=`` overrides
    the folder.
    """

    def factory(name: str = "ds", *, root: Path | None = None, **kwargs: Any) -> SyntheticDataset:
        return write_lerobot_dataset(root if root is not None else tmp_path / "datasets" / name, **kwargs)

    return factory


@pytest.fixture
def write_mixture_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``write_mixture_file(document, name="mixture.json")`` writing JSON under ``tmp_path``.

    A ``str`` document is written verbatim (for malformed JSON); anything else goes through
    :func:`fasttok_plugin.testing.write_mixture`. Relative dataset roots resolve against ``tmp_path``.
    """

    def factory(document: Mapping[str, Any] | str, name: str = "mixture.json") -> Path:
        path = tmp_path / name
        if isinstance(document, str):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(document)
            return path
        return write_mixture(path, document)

    return factory


@pytest.fixture
def example_mixture(tmp_path: Path) -> Path:
    """The six-entry example mixture of :func:`fasttok_plugin.testing.make_example_mixture`."""
    return make_example_mixture(tmp_path / "example", n_datasets=6)
