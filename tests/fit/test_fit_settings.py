"""FitSettings: validation messages, the shared integer rule, and the argument > mixture > default rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin.defaults import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_ACTION_DIM
from fasttok_plugin.fit import FitError, FitSettings
from fasttok_plugin.mixture import parse_mixture


def test_integers_follow_the_shared_rule_with_each_fields_lower_bound() -> None:
    settings = FitSettings(
        vocab_size=np.int64(512), seed=0, workers=0, min_frequency=0, chunk_size=np.int32(7)
    )
    assert settings.vocab_size == 512
    with pytest.raises(FitError) as info:
        FitSettings(vocab_size=1, seed=True, chunk_size=0, workers=-1, max_fit_chunks=2.0)
    message = str(info.value)
    assert message.startswith("invalid fit settings:\n")
    for line in (
        "chunk_size must be an integer >= 1, got 0",
        "vocab_size must be an integer >= 2, got 1",
        "max_fit_chunks must be an integer >= 1, got 2.0",
        "seed must be an integer >= 0, got True",
        "workers must be an integer >= 0, got -1",
    ):
        assert f"  - {line}" in message


def test_resolved_takes_the_argument_else_the_mixture_else_the_default(tmp_path: Path) -> None:
    with_values = parse_mixture(
        {"datasets": [{"repo_id": "lab/a"}], "chunk_size": 7, "max_action_dim": 9}, base_dir=tmp_path
    )
    without = parse_mixture({"datasets": [{"repo_id": "lab/a"}]}, base_dir=tmp_path)
    assert FitSettings(chunk_size=5).resolved(with_values).chunk_size == 5
    assert FitSettings().resolved(with_values).chunk_size == 7
    assert FitSettings().resolved(with_values).max_action_dim == 9
    assert FitSettings().resolved(without).chunk_size == DEFAULT_CHUNK_SIZE
    assert FitSettings().resolved(None).max_action_dim == DEFAULT_MAX_ACTION_DIM


def test_the_old_import_path_is_the_fit_package() -> None:
    import fasttok_plugin.fit as fit
    import fasttok_plugin.fitting as fitting

    assert set(fitting.__all__) == set(fit.__all__)
    for name in fitting.__all__:
        assert getattr(fitting, name) is getattr(fit, name), name
