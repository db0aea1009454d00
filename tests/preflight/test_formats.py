"""Renderers in isolation: escaping, paths relative to the workspace, colour only when asked."""

from __future__ import annotations

from pathlib import Path

from fasttok_plugin.preflight import Finding, PreflightResult, Severity
from fasttok_plugin.preflight.formats import display_path, github_annotation, render


def test_github_annotation_escapes_data_and_properties() -> None:
    line = github_annotation("error", "50% done\nnext", file="dir,a:b.json", line=7, title="FT1")
    assert line == "::error file=dir%2Ca%3Ab.json,line=7,title=FT1::50%25 done%0Anext"


def test_display_path_is_relative_inside_the_workspace(tmp_path: Path) -> None:
    assert display_path(tmp_path / "configs" / "m.json", tmp_path) == "configs/m.json"
    assert display_path(Path("/elsewhere/m.json"), tmp_path) == "/elsewhere/m.json"


def test_text_colour_only_when_requested(tmp_path: Path) -> None:
    finding = Finding(
        "FT201", Severity.ERROR, "too wide", 0, "org/x", "/datasets/0", "raise it", 3, tmp_path / "m.json"
    )
    result = PreflightResult((finding,), mixture=tmp_path / "m.json", n_datasets=1, entry_names=("org/x",))
    plain = render([result], "text", cwd=tmp_path)
    assert "\x1b[" not in plain
    assert plain.splitlines()[0] == "m.json"
    assert "[0] org/x  (line 3, /datasets/0)" in plain
    assert "fix: raise it" in plain
    assert "\x1b[31;1m" in render([result], "text", color=True, cwd=tmp_path)


def test_finding_without_file_still_renders_in_every_format(tmp_path: Path) -> None:
    finding = Finding("XX001", Severity.WARNING, "from a plugin without a location")
    result = PreflightResult((finding,), mixture=tmp_path / "m.json")
    for fmt in ("text", "json", "github", "junit", "sarif"):
        assert "XX001" in render([result], fmt, cwd=tmp_path)
