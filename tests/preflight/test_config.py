"""``[tool.fasttok.preflight]`` discovery: the nearest pyproject.toml that has the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from fasttok_plugin.preflight import PreflightUsageError
from fasttok_plugin.preflight.config import find_project_config


def test_nearest_pyproject_with_the_table_wins(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.fasttok.preflight]\nchunk-size = 70\nmin_frames = 5\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    (tmp_path / "a" / "b").mkdir()
    config = find_project_config(tmp_path / "a" / "b")
    assert config.path == tmp_path / "pyproject.toml"
    assert config.builtin == {"chunk_size": 70}
    assert config.plugin_options == {"min_frames": 5}


def test_no_table_means_no_configuration(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    config = find_project_config(tmp_path)
    assert config.path is None


def test_unknown_plugin_keys_are_reported_with_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.fasttok.preflight]\nignor = ["FT104"]\n')
    config = find_project_config(tmp_path)
    with pytest.raises(PreflightUsageError, match="did you mean 'ignore'"):
        config.check_plugin_keys(set())


@pytest.mark.parametrize(
    "table",
    ["strict = 1", 'format = "xml"', "select = [1]", "max_action_dim = 0", "plugins = 3"],
)
def test_wrong_types_are_usage_errors_naming_the_file(tmp_path: Path, table: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.fasttok.preflight]\n{table}\n")
    with pytest.raises(PreflightUsageError, match=r"pyproject\.toml"):
        find_project_config(tmp_path)
