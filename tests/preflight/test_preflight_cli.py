"""``fasttok-preflight`` as CI runs it: a subprocess, every format, exit codes, selection, plugins, config."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

EXAMPLE_PLUGIN_DIR = Path(__file__).resolve().parents[2] / "examples" / "preflight_plugin"

CliRun = Any  # conftest.CliRun: returncode, stdout, stderr, output
Build = Callable[..., Path]
Run = Callable[..., CliRun]
Spec = Callable[..., object]


@pytest.fixture
def mixed(build_mixture: Build, ds: Spec) -> Path:
    """One error (FT201 on entry 1), one warning (FT402 on entry 2), one info (FT104 on entry 3)."""
    return build_mixture(
        ds("ok"),
        ds("wide", action_dim=40),
        ds("short", episode_lengths=(20, 80)),
        ds("untagged", robot_type=None),
    )


@pytest.fixture
def clean(build_mixture: Build, ds: Spec) -> Path:
    return build_mixture(ds("a"), ds("b", robot_type="other", action_dim=7), name="clean.json")


@pytest.fixture
def warn_only(build_mixture: Build, ds: Spec) -> Path:
    return build_mixture(ds("a"), ds("short", episode_lengths=(20, 80)), name="warn.json")


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line of ``path`` containing ``needle``."""
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def entry_line(path: Path, repo_id: str) -> int:
    """Line of the opening brace of the entry whose repo_id is ``repo_id``."""
    return line_of(path, f'"repo_id": "{repo_id}"') - 1


def assert_no_traceback(run: CliRun) -> None:
    assert "Traceback" not in run.output
    assert "internal error" not in run.output


# --------------------------------------------------------------------------------------------- exit codes
def test_clean_mixture_exits_0(run_cli: Run, clean: Path) -> None:
    run = run_cli(clean)
    assert run.returncode == 0, run.output
    assert "all checks passed" in run.stdout


def test_errors_exit_1_and_text_groups_findings_by_entry(run_cli: Run, mixed: Path) -> None:
    run = run_cli(mixed)
    assert run.returncode == 1, run.output
    assert_no_traceback(run)
    out = run.stdout
    # Grouped by entry, in mixture order, each group headed by index and name.
    assert out.index("[1] test/wide") < out.index("FT201") < out.index("[2] test/short") < out.index("FT402")
    assert out.index("[3] test/untagged") < out.index("FT104")
    assert "fix: raise --max-action-dim to at least 40" in out
    assert "1 error, 1 warning, 1 info in 4 datasets" in out
    assert "\x1b[" not in out  # not a TTY: no colour


def test_warnings_exit_0_unless_strict(run_cli: Run, warn_only: Path) -> None:
    assert run_cli(warn_only).returncode == 0
    strict = run_cli(warn_only, "--strict")
    assert strict.returncode == 1
    assert "error   FT402" in strict.stdout


def test_color_always_paints_and_no_color_never(run_cli: Run, mixed: Path) -> None:
    assert "\x1b[31;1m" in run_cli(mixed, "--color", "always").stdout
    assert "\x1b[" not in run_cli(mixed, "--color", "never").stdout


def test_structurally_invalid_mixture_exits_1_with_ft001(
    run_cli: Run, write_mixture_file: Callable[..., Path]
) -> None:
    path = write_mixture_file({"datasets": [{"repo_id": 5}]})
    run = run_cli(path, "--format", "json")
    assert run.returncode == 1
    assert [f["code"] for f in json.loads(run.stdout)["findings"]] == ["FT001"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "not found"),
        ('{"datasets": [\n  {"repo_id": "a",}\n]}', "line 2 column"),
        ('{"$ref": "mixture.json"}', "$ref"),
    ],
    ids=["missing", "not-json", "ref-cycle"],
)
def test_unreadable_mixture_exits_2_with_one_line(
    run_cli: Run, tmp_path: Path, content: str | None, fragment: str
) -> None:
    path = tmp_path / "mixture.json"
    if content is not None:
        path.write_text(content)
    run = run_cli(path)
    assert run.returncode == 2
    assert_no_traceback(run)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fasttok-preflight: error:")
    assert str(path) in lines[0]
    assert fragment in lines[0]


@pytest.mark.parametrize(
    "args",
    [[], ["--chunk-size", "0"], ["--max-action-dim", "x"], ["--format", "xml"], ["--select", "FT-1!"]],
    ids=["no-mixture", "chunk-size-0", "dim-not-int", "bad-format", "bad-selector"],
)
def test_usage_errors_exit_2(run_cli: Run, clean: Path, args: list[str]) -> None:
    run = run_cli(*([clean] if args else []), *args)
    assert run.returncode == 2
    assert_no_traceback(run)
    assert "error" in run.stderr


def test_several_mixtures_exit_with_the_worst_status(run_cli: Run, clean: Path, mixed: Path) -> None:
    run = run_cli(clean, mixed, "--format", "json")
    assert run.returncode == 1
    document = json.loads(run.stdout)
    assert [m["ok"] for m in document["mixtures"]] == [True, False]


# ------------------------------------------------------------------------------------------------ formats
def test_json_format(run_cli: Run, mixed: Path) -> None:
    document = json.loads(run_cli(mixed, "--format", "json").stdout)
    assert document["ok"] is False
    assert document["summary"] == {"error": 1, "warning": 1, "info": 1}
    first = document["findings"][0]
    assert first["code"] == "FT201"
    assert first["entry"] == {"index": 1, "name": "test/wide"}
    assert first["pointer"] == "/datasets/1"
    assert first["line"] == entry_line(mixed, "test/wide")
    assert first["hint"]


def test_github_annotations_carry_file_and_line(run_cli: Run, mixed: Path, tmp_path: Path) -> None:
    run = run_cli(mixed, "--format", "github", cwd=tmp_path)
    lines = run.stdout.splitlines()
    assert run.returncode == 1
    pattern = re.compile(r"^::(error|warning|notice) file=([^,]+),line=(\d+),title=(FT\d{3})::(.+)$")
    parsed = [pattern.match(line) for line in lines]
    assert all(parsed), lines
    by_code = {m.group(4): m for m in parsed if m}
    assert set(by_code) == {"FT201", "FT402", "FT104"}
    wide = by_code["FT201"]
    assert wide.group(1) == "error"
    assert wide.group(2) == "mixture.json"  # relative to the working directory, as GitHub expects
    assert int(wide.group(3)) == entry_line(mixed, "test/wide")
    assert "test/wide" in wide.group(5)
    assert by_code["FT402"].group(1) == "warning"
    assert by_code["FT104"].group(1) == "notice"


def test_junit_xml_parses_with_one_case_per_entry(run_cli: Run, mixed: Path) -> None:
    root = ET.fromstring(run_cli(mixed, "--format", "junit").stdout)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "mixture file",
        "[0] test/ok",
        "[1] test/wide",
        "[2] test/short",
        "[3] test/untagged",
    ]
    assert suite.get("tests") == "5"
    assert suite.get("failures") == "1"
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["[1] test/wide"]
    assert cases[2].find("failure").get("type") == "FT201"
    assert "FT402" in cases[3].find("system-out").text


def test_sarif_is_valid_2_1_0(run_cli: Run, mixed: Path) -> None:
    document = json.loads(run_cli(mixed, "--format", "sarif").stdout)
    assert document["version"] == "2.1.0"
    assert "sarif" in document["$schema"]
    (sarif_run,) = document["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "fasttok-preflight"
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert {"FT101", "FT201", "FT402"} <= set(rule_ids)
    results = sarif_run["results"]
    assert {r["ruleId"] for r in results} == {"FT201", "FT402", "FT104"}
    for result in results:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
        assert result["message"]["text"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "mixture.json"
        assert physical["region"]["startLine"] >= 1
    wide = next(r for r in results if r["ruleId"] == "FT201")
    assert wide["level"] == "error"
    assert wide["locations"][0]["physicalLocation"]["region"]["startLine"] == entry_line(mixed, "test/wide")


def test_clean_run_in_machine_formats_is_still_well_formed(run_cli: Run, clean: Path) -> None:
    assert json.loads(run_cli(clean, "--format", "sarif").stdout)["runs"][0]["results"] == []
    assert ET.fromstring(run_cli(clean, "--format", "junit").stdout).get("failures") == "0"
    assert run_cli(clean, "--format", "github").stdout == ""


# ---------------------------------------------------------------------------------------------- selection
def test_select_by_prefix(run_cli: Run, mixed: Path) -> None:
    run = run_cli(mixed, "--format", "json", "--select", "FT4")
    assert [f["code"] for f in json.loads(run.stdout)["findings"]] == ["FT402"]
    assert run.returncode == 0  # the only error was not selected


def test_ignore_a_code_turns_the_run_green(run_cli: Run, mixed: Path) -> None:
    run = run_cli(mixed, "--format", "json", "--ignore", "FT201")
    assert run.returncode == 0
    assert {f["code"] for f in json.loads(run.stdout)["findings"]} == {"FT402", "FT104"}


def test_more_specific_selector_wins(run_cli: Run, mixed: Path) -> None:
    run = run_cli(mixed, "--format", "json", "--select", "FT", "--ignore", "FT1,FT4", "--select", "FT104")
    assert {f["code"] for f in json.loads(run.stdout)["findings"]} == {"FT201", "FT104"}


# ------------------------------------------------------------------------------------------------ plugins
def test_disable_a_builtin_check_by_name(run_cli: Run, mixed: Path) -> None:
    run = run_cli(mixed, "--format", "json", "-p", "no:action_dims")
    document = json.loads(run.stdout)
    assert "FT201" not in {f["code"] for f in document["findings"]}
    assert "action_dims" not in document["mixtures"][0]["checks"]
    assert run.returncode == 0


def test_example_plugin_via_dash_p(run_cli: Run, clean: Path) -> None:
    # Each dataset has 140 frames: the plugin's --min-frames option decides.
    args = (clean, "--format", "json", "-p", "fasttok_min_frames")
    failing = run_cli(*args, "--min-frames", "200", pythonpath=[EXAMPLE_PLUGIN_DIR])
    assert failing.returncode == 1, failing.output
    found = [f for f in json.loads(failing.stdout)["findings"] if f["code"] == "MF001"]
    assert [f["entry"]["name"] for f in found] == ["test/a", "test/b"]
    assert "140 frames" in found[0]["message"]
    passing = run_cli(*args, "--min-frames", "100", pythonpath=[EXAMPLE_PLUGIN_DIR])
    assert passing.returncode == 0, passing.output


def test_example_plugin_option_shows_in_help(run_cli: Run) -> None:
    run = run_cli("-p", "fasttok_min_frames", "--help", pythonpath=[EXAMPLE_PLUGIN_DIR])
    assert run.returncode == 0
    assert "--min-frames" in run.stdout


def test_example_plugin_rule_is_described_in_sarif(run_cli: Run, clean: Path) -> None:
    run = run_cli(
        clean,
        "--format",
        "sarif",
        "-p",
        "fasttok_min_frames",
        "--min-frames",
        "500",
        pythonpath=[EXAMPLE_PLUGIN_DIR],
    )
    rules = {r["id"]: r for r in json.loads(run.stdout)["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["MF001"]["name"] == "head-too-few-frames"


def _install_entry_point(site: Path) -> None:
    """Make the example plugin discoverable through the ``fasttok.preflight`` entry-point group."""
    dist = site / "fasttok_min_frames-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fasttok-min-frames\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[fasttok.preflight]\nmin_frames = fasttok_min_frames\n")


def test_example_plugin_via_entry_point_and_disabled_by_name(
    run_cli: Run, clean: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    _install_entry_point(site)
    path = [site, EXAMPLE_PLUGIN_DIR]
    loaded = run_cli(clean, "--format", "json", "--min-frames", "1000", pythonpath=path)
    assert loaded.returncode == 1, loaded.output
    assert "min_frames" in json.loads(loaded.stdout)["mixtures"][0]["checks"]
    disabled = run_cli(clean, "--format", "json", "-p", "no:min_frames", pythonpath=path)
    assert disabled.returncode == 0, disabled.output
    assert "min_frames" not in json.loads(disabled.stdout)["mixtures"][0]["checks"]


def test_missing_plugin_module_is_a_usage_error(run_cli: Run, clean: Path) -> None:
    run = run_cli(clean, "-p", "no_such_fasttok_plugin")
    assert run.returncode == 2
    assert_no_traceback(run)
    assert "no_such_fasttok_plugin" in run.stderr


def test_crashing_plugin_becomes_an_ft900_error(run_cli: Run, clean: Path, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crashy.py").write_text(
        textwrap.dedent(
            """
            from fasttok_plugin.preflight import hookimpl

            @hookimpl
            def fasttok_preflight_checks(context):
                raise RuntimeError("house rule exploded")
            """
        )
    )
    run = run_cli(clean, "-p", "crashy", pythonpath=[plugins])
    assert run.returncode == 1
    assert_no_traceback(run)
    assert "FT900" in run.stdout
    assert "house rule exploded" in run.stdout


SIEVE = """
from fasttok_plugin.preflight import hookimpl


@hookimpl(wrapper=True)
def fasttok_preflight_checks(context):
    results = yield  # one list of findings per check plugin, built-ins included
    codes = ",".join(sorted({f.code for findings in results for f in findings}))
    kept = [[f for f in findings if f.code != "FT201"] for findings in results]
    return [*kept, [context.finding("SV001", "info", f"built-in checks found {codes}")]]
"""


def test_wrapper_plugin_via_dash_p_filters_and_adds(run_cli: Run, mixed: Path, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "sieve.py").write_text(SIEVE)
    run = run_cli(mixed, "--format", "json", "-p", "sieve", pythonpath=[plugins])
    assert run.returncode == 0, run.output  # the wrapper dropped the only error
    document = json.loads(run.stdout)
    found = {f["code"]: f for f in document["findings"]}
    assert set(found) == {"FT402", "FT104", "SV001"}
    assert found["SV001"]["message"] == "built-in checks found FT104,FT201,FT402"
    assert found["SV001"]["check"] == "sieve"
    assert found["FT104"]["check"] == "fallback_heads"
    assert "sieve" in document["mixtures"][0]["checks"]


def test_plugin_with_a_misspelt_hook_is_rejected(run_cli: Run, clean: Path, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "typo.py").write_text(
        "from fasttok_plugin.preflight import hookimpl\n\n"
        "@hookimpl\ndef fasttok_preflight_check(context):\n    return []\n"
    )
    run = run_cli(clean, "-p", "typo", pythonpath=[plugins])
    assert run.returncode == 2
    assert_no_traceback(run)
    assert "fasttok_preflight_check" in run.stderr


# ------------------------------------------------------------------------------------------ pyproject.toml
def test_pyproject_defaults_apply_and_the_cli_wins(run_cli: Run, warn_only: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.fasttok.preflight]\nstrict = true\nselect = ["FT4"]\n')
    configured = run_cli(warn_only, "--format", "json")
    assert configured.returncode == 1  # strict from pyproject
    assert {f["code"] for f in json.loads(configured.stdout)["findings"]} == {"FT402"}
    overridden = run_cli(warn_only, "--no-strict")
    assert overridden.returncode == 0
    isolated = run_cli(warn_only, "--isolated")
    assert isolated.returncode == 0


def test_nearest_pyproject_with_the_table_is_found_walking_up(
    run_cli: Run, build_mixture: Build, ds: Spec, tmp_path: Path
) -> None:
    path = build_mixture(ds("ep", episode_lengths=(60, 80)), name="configs/deep/mixture.json")
    # The datasets live next to tmp_path/configs/deep: point the relative roots there.
    (tmp_path / "configs" / "deep" / "datasets").symlink_to(tmp_path / "datasets")
    (tmp_path / "pyproject.toml").write_text("[tool.fasttok.preflight]\nchunk_size = 70\n")
    (tmp_path / "configs" / "pyproject.toml").write_text('[project]\nname = "unrelated"\n')
    run = run_cli(path, "--format", "json", cwd=tmp_path / "configs")
    assert {f["code"] for f in json.loads(run.stdout)["findings"]} == {"FT402"}  # 70-step chunks
    assert json.loads(run_cli(path, "--format", "json", "--chunk-size", "50").stdout)["findings"] == []


def test_pyproject_plugins_and_plugin_options(run_cli: Run, clean: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.fasttok.preflight]\nplugins = ["fasttok_min_frames"]\nmin_frames = 1000\n'
    )
    run = run_cli(clean, "--format", "json", pythonpath=[EXAMPLE_PLUGIN_DIR])
    assert {f["code"] for f in json.loads(run.stdout)["findings"]} == {"MF001"}
    assert run_cli(clean, "--min-frames", "10", pythonpath=[EXAMPLE_PLUGIN_DIR]).returncode == 0


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ("chunk_sise = 70", "did you mean 'chunk_size'"),
        ('chunk_size = "big"', "positive integer"),
        ("strict = [", "cannot read"),
    ],
    ids=["unknown-key", "wrong-type", "bad-toml"],
)
def test_bad_pyproject_configuration_exits_2(
    run_cli: Run, clean: Path, tmp_path: Path, table: str, fragment: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.fasttok.preflight]\n{table}\n")
    run = run_cli(clean)
    assert run.returncode == 2
    assert_no_traceback(run)
    assert fragment in run.stderr
    assert "pyproject.toml" in run.stderr


# ------------------------------------------------------------------------------------- metadata only, fast
def test_reads_metadata_only_never_action_data(run_cli: Run, clean: Path, tmp_path: Path) -> None:
    data_files = sorted((tmp_path / "datasets").glob("*/data/**/*.parquet"))
    assert data_files
    for data_file in data_files:
        data_file.write_bytes(b"not parquet at all")
    run = run_cli(clean)
    assert run.returncode == 0, run.output
    assert "all checks passed" in run.stdout


def test_cli_path_does_not_import_torch_or_lightning(clean: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from fasttok_plugin.preflight.cli import main\n"
        f"status = main([{str(clean)!r}, '--format', 'json'])\n"
        "heavy_roots = ('torch', 'pytorch_lightning', 'lightning')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in heavy_roots)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
