"""`fasttok fit` / `fasttok inspect` as real subprocesses on on-disk mixtures."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import pytest

from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.testing import SyntheticDataset
from fasttok_plugin.tokenizer_dir import FolderState, folder_state

FAST_FIT = ["--chunk-size", "10", "--vocab-size", "300", "--total-chunks", "400", "--max-fit-chunks", "200"]


def fasttok(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (fall back to ``python -m`` when the script is not on disk)."""
    script = Path(sys.executable).with_name("fasttok")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fasttok_plugin.cli"]
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_fit_then_inspect_a_multi_robot_mixture(example_mixture: Path, tmp_path: Path) -> None:
    resolved = resolve_mixture(example_mixture)
    heads = build_norm_heads(resolved, 32)
    versions = {entry.meta.version for entry in resolved.entries}
    assert versions == {"v2.1", "v3.0"}
    assert heads.fallback_entries
    out = tmp_path / "tokenizer"

    fit = fasttok("fit", str(example_mixture), "--out", str(out), *FAST_FIT, "--workers", "2")
    assert fit.returncode == 0, fit.stderr
    assert "Traceback" not in fit.stderr
    assert "sample + normalize" not in fit.stderr  # stderr is not a TTY: no progress bars
    assert {"processor_config.json", "tokenizer.json", "fasttok.json", "fit_report.json"} <= {
        p.name for p in out.iterdir()
    }
    assert folder_state(out) is FolderState.TOKENIZER  # the fit writes only files the ownership rule knows
    report = json.loads((out / "fit_report.json").read_text())
    assert [h["key"] for h in report["heads"]] == list(heads.keys)
    assert report["sampled"] == 400
    assert report["fit"] == 200
    assert 0 < report["heldout"] == sum(h["heldout"] for h in report["heads"])
    assert f"wrote {out}" in fit.stdout

    inspect = fasttok("inspect", str(out))
    assert inspect.returncode == 0, inspect.stderr
    text = inspect.stdout
    assert "Token lengths per head (held-out chunks)" in text
    for key in heads.keys:
        assert key in text
    for entry in resolved.entries:
        assert entry.name in text
    assert f"p99 {report['token_lengths']['p99']:.0f}" in text
    assert "|" in text
    assert "#" in text

    as_json = fasttok("inspect", str(out), "--json")
    assert json.loads(as_json.stdout)["fit_fingerprint"] == report["fit_fingerprint"]


def test_preflight_error_exits_1_listing_findings_before_sampling(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path], tmp_path: Path
) -> None:
    tagged = make_dataset("tagged", control_mode="joint_pos")
    untagged = make_dataset("untagged", robot_type=None, seed=1)
    # Any attempt to read action data would now fail loudly with a different error.
    for ds in (tagged, untagged):
        for path in (ds.root / "data").rglob("*.parquet"):
            path.write_bytes(b"sampling would choke on this")
    mixture = write_mixture_file(
        {
            "datasets": [
                {"repo_id": "lab/tagged", "root": str(tagged.root)},
                {"repo_id": "lab/untagged", "root": str(untagged.root)},
            ],
            "require_non_empty_robot_type": True,
        }
    )
    out = tmp_path / "tok"
    result = fasttok("fit", str(mixture), "--out", str(out), *FAST_FIT)
    assert result.returncode == 1
    assert "lab/untagged" in result.stdout
    assert "robot_type" in result.stdout
    assert "nothing was sampled" in result.stderr
    assert "could not be sampled" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_unreadable_mixture_exits_2_without_traceback(tmp_path: Path) -> None:
    missing = fasttok("fit", str(tmp_path / "nope.json"), "--out", str(tmp_path / "tok"))
    assert missing.returncode == 2
    assert "nope.json" in missing.stderr
    assert "Traceback" not in missing.stderr

    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    result = fasttok("fit", str(broken), "--out", str(tmp_path / "tok"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(example_mixture: Path, tmp_path: Path) -> None:
    assert fasttok("fit", str(example_mixture)).returncode == 2  # --out missing
    bad = fasttok("fit", str(example_mixture), "--out", str(tmp_path / "t"), "--vocab-size", "0")
    assert bad.returncode == 2
    assert "vocab-size" in bad.stderr
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("x")
    refused = fasttok("fit", str(example_mixture), "--out", str(precious), *FAST_FIT)
    assert refused.returncode == 2
    assert "not a tokenizer directory" in refused.stderr
    assert "Traceback" not in refused.stderr
    not_a_tokenizer = fasttok("inspect", str(tmp_path))
    assert not_a_tokenizer.returncode == 2
    assert "fit_report.json" in not_a_tokenizer.stderr


def test_user_mistakes_get_a_message_naming_the_fix_not_a_traceback(
    example_mixture: Path, tmp_path: Path
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    under_a_file = fasttok("fit", str(example_mixture), "--out", str(a_file / "tok"), *FAST_FIT)
    assert under_a_file.returncode == 2
    assert f"{a_file} is a file" in under_a_file.stderr
    negative = fasttok("fit", str(example_mixture), "--out", str(tmp_path / "t"), "--total-chunks", "-5")
    assert negative.returncode == 2
    assert "--total-chunks" in negative.stderr
    # Normalized data quantizes to about -31..31 at scale 10: a vocabulary of 20 cannot hold it.
    out = tmp_path / "small_vocab"
    small_vocab = fasttok("fit", str(example_mixture), "--out", str(out), *FAST_FIT, "--vocab-size", "20")
    assert small_vocab.returncode == 1
    assert "raise vocab_size above" in small_vocab.stderr
    assert "--vocab-size" in small_vocab.stderr
    for result in (under_a_file, negative, small_vocab):
        assert "Traceback" not in result.stderr
        assert "internal error" not in result.stderr
    assert not out.exists()


def test_progress_bars_show_on_a_terminal(example_mixture: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("fasttok")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fasttok_plugin.cli"]
    leader, follower = pty.openpty()
    # A fresh pty is 0 columns wide, and tqdm draws nothing on a 0-column terminal.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(
        [*command, "fit", str(example_mixture), "--out", str(tmp_path / "tok"), *FAST_FIT],
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:  # drain while it runs, or a full terminal buffer would block the child
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert process.wait(timeout=300) == 0
    terminal = b"".join(chunks).decode(errors="replace")
    assert "sample + normalize" in terminal
    assert "evaluate held-out" in terminal
    # The BPE phase has no steps to count: it shows its elapsed time (it was a 0/1 bar).
    assert re.search(r"BPE fit: \d\d:\d\d elapsed", terminal)


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from fasttok_plugin import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'tokenizers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_one_line_lists_every_problem_or_every_line() -> None:
    # One rule for both CLIs and the FT901 finding: the stricter of the former copies (nothing is cut off).
    from fasttok_plugin.errors import MixtureError, NormHeadsError
    from fasttok_plugin.exit_status import one_line
    from fasttok_plugin.mixture import MixtureProblem

    problems = [MixtureProblem("/datasets", "missing", "add datasets", 2), MixtureProblem("", "not JSON")]
    assert one_line(MixtureError(problems, unreadable=True)) == "; ".join(str(p) for p in problems)
    assert one_line(NormHeadsError(["dim 3 of 'arm' has no finite min", "x"])) == (
        "2 norm-head error(s): - dim 3 of 'arm' has no finite min - x"
    )
    assert one_line(KeyError()) == "KeyError"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "m.json", "--out", "t", "--vocab-size", "0"], "'0' must be a positive integer"),
        (["fit", "m.json", "--out", "t", "--chunk-size", "x"], "'x' is not an integer"),
        (["fit", "m.json", "--out", "t", "--seed", "-1"], "'-1' must be >= 0"),
        (["fit", "m.json", "--out", "t", "--scale", "inf"], "'inf' must be a positive number"),
        (["fit", "m.json", "--out", "t", "--heldout-fraction", "1"], "'1' must be between 0 and 1"),
        (["preflight", "m.json", "--chunk-size", "0"], "'0' must be a positive integer"),
        (["preflight", "m.json", "--max-action-dim", "x"], "'x' is not an integer"),
    ],
)
def test_both_clis_check_numbers_with_one_rule(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from fasttok_plugin import cli
    from fasttok_plugin.preflight import cli as preflight_cli

    parser = preflight_cli.build_parser() if argv[0] == "preflight" else cli.build_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv[1:] if argv[0] == "preflight" else argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_scale_that_overflows_float32_is_refused_naming_scale(
    example_mixture: Path, tmp_path: Path
) -> None:
    # 1e39 is finite as a float64 but inf as float32: 0 * inf is NaN, which once passed every check and
    # became min_token = -2**63 with one token per chunk.
    out = tmp_path / "tok"
    result = fasttok("fit", str(example_mixture), "--out", str(out), *FAST_FIT, "--scale", "1e39")
    assert result.returncode == 1, result.stderr
    assert "scale=1e+39" in result.stderr
    assert "Lower scale (--scale)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--vocab-size", "1000000000", "vocab_size must be at most 16777216"),
        ("--min-frequency", str(2**64), f"min_frequency must be at most {2**64 - 1}"),
        ("--max-token-length", str(2**64), f"max_token_length must be at most {2**64 - 1}"),
        ("--max-fit-chunks", "0", "'0' must be a positive integer, or 'none' for no limit"),
        ("--max-action-tokens", "0", "'0' must be a positive integer, or 'none' for no limit"),
    ],
)
def test_trainer_limits_and_zero_caps_exit_2_before_any_sampling(
    example_mixture: Path, tmp_path: Path, option: str, value: str, message: str
) -> None:
    out = tmp_path / "tok"
    result = fasttok("fit", str(example_mixture), "--out", str(out), *FAST_FIT, option, value)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "panicked" not in result.stderr
    assert not out.exists()


def test_max_fit_chunks_none_is_the_spelling_of_no_cap(example_mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    result = fasttok("fit", str(example_mixture), "--out", str(out), *FAST_FIT, "--max-fit-chunks", "none")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "fit_report.json").read_text())
    assert report["fit"] == report["sampled"] - report["heldout"] > 200


def test_stats_with_min_above_max_stop_the_fit_before_sampling(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path], tmp_path: Path
) -> None:
    # min > max would give the head a negative range: Normalize flips the sign of that dim.
    swapped = make_dataset("swapped", action_dim=3, stats_override={"min": [1.0, 0, 0], "max": [-1.0, 1, 1]})
    mixture = write_mixture_file({"datasets": [{"repo_id": "lab/swapped", "root": str(swapped.root)}]})
    out = tmp_path / "tok"
    result = fasttok("fit", str(mixture), "--out", str(out), *FAST_FIT)
    assert result.returncode == 1, result.stderr
    assert "FT205" in result.stdout
    assert "lab/swapped" in result.stdout
    assert "dim 0 (min 1 > max -1)" in result.stdout
    assert "nothing was sampled" in result.stderr
    assert not out.exists()


def test_off_grid_timestamps_without_timestamp_stats_are_fit_warnings(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Millisecond timestamps, and metadata without timestamp stats: only the sampler can see it.
    millis = make_dataset("millis", version="v2.1", write_stats=False, write_episode_stats=False)
    for path in (millis.root / "data").rglob("*.parquet"):
        table = pq.read_table(path)
        ts = table.column("timestamp").to_numpy().astype("float64") * 1000.0
        index = table.schema.get_field_index("timestamp")
        pq.write_table(table.set_column(index, "timestamp", pa.array(ts.astype("float32"))), path)
    # Stats are needed for the head: write them without a timestamp entry.
    stats = {
        "action": {"min": [-3.0] * 7, "max": [3.0] * 7, "mean": [0.0] * 7, "std": [1.0] * 7, "count": [140]}
    }
    (millis.root / "meta" / "stats.json").write_text(json.dumps(stats))
    mixture = write_mixture_file({"datasets": [{"repo_id": "lab/millis", "root": str(millis.root)}]})
    out = tmp_path / "tok"
    result = fasttok(
        "fit",
        str(mixture),
        "--out",
        str(out),
        "--chunk-size",
        "4",
        "--vocab-size",
        "300",
        "--total-chunks",
        "200",
        "--max-fit-chunks",
        "100",
    )
    assert result.returncode == 0, result.stderr
    warnings = json.loads((out / "fit_report.json").read_text())["warnings"]
    off_grid = [w for w in warnings if "off the 1/fps grid" in w]
    assert off_grid == [
        "entry 0 (lab/millis): timestamps are off the 1/fps grid of info.json fps=30 (they show 0.03 Hz); "
        "check that timestamps are in seconds and that info.json fps is right"
    ]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")
    }


def test_fit_into_a_project_folder_is_refused_and_deletes_nothing(example_mixture: Path) -> None:
    # Issue #10: a project folder with one stray fit_report.json was taken for a tokenizer folder, and
    # `fasttok fit mixture.json --out .` deleted the code, the notes, the datasets and the mixture itself.
    project = example_mixture.parent
    (project / "fit_report.json").write_text('{"stray": true}')
    (project / "src").mkdir()
    (project / "src" / "train.py").write_text("print('train')\n")
    (project / "NOTES.md").write_text("keep me\n")
    before = _tree(project)
    for out, cwd in ((".", project), (str(project), None), (str(project.parent), None)):
        result = fasttok("fit", str(example_mixture), "--out", out, *FAST_FIT, cwd=cwd)
        assert result.returncode == 2, (out, result.stderr)
        assert "Traceback" not in result.stderr
        assert "nothing was" in result.stderr
        assert _tree(project) == before
    dot = fasttok("fit", "mixture.json", "--out", ".", *FAST_FIT, cwd=project)
    assert "current directory" in dot.stderr
    into_project = fasttok("fit", str(example_mixture), "--out", str(project), *FAST_FIT)
    assert f"holds {example_mixture}" in into_project.stderr
    assert sorted(p.name for p in project.parent.iterdir()) == [project.name]  # no staging, no lock file


def test_fit_refuses_the_current_directory_even_when_it_is_empty_or_ours(
    example_mixture: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = fasttok("fit", str(example_mixture), "--out", ".", *FAST_FIT, cwd=empty)
    assert result.returncode == 2
    assert "is the current directory or one of its parents" in result.stderr
    assert list(empty.iterdir()) == []


CONCURRENT_FIT = [*FAST_FIT, "--quiet", "--workers", "1"]


def test_two_concurrent_fits_into_one_out_both_succeed_one_after_the_other(
    example_mixture: Path, tmp_path: Path
) -> None:
    # Issue #10: two concurrent fits into one --out gave "internal error: FileNotFoundError" or silently lost
    # a result. Writers of one folder now take its lock in turn: each fit is written whole, the later one
    # replaces the earlier one, and both say so.
    out = tmp_path / "tok"
    script = Path(sys.executable).with_name("fasttok")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fasttok_plugin.cli"]
    runs = [
        subprocess.Popen(
            [*command, "fit", str(example_mixture), "--out", str(out), *CONCURRENT_FIT, "--seed", str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        assert f"wrote {out}" in stdout
    from fasttok_plugin.codec import FastTokenizer

    report = json.loads((out / "fit_report.json").read_text())
    # One fit's tokenizer and that same fit's report: never a folder mixing the two fits.
    assert FastTokenizer.load(out).metadata["fit_fingerprint"] == report["fit_fingerprint"]
    assert folder_state(out) is FolderState.TOKENIZER
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "example") == ["tok"]


# -- head grouping (issue #11) -------------------------------------------------------------------------------


def test_fit_with_head_grouping_global_records_it_and_inspect_shows_it(
    example_mixture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tokenizer"
    fit = fasttok(
        "fit", str(example_mixture), "--out", str(out), "--head-grouping", "global", "--quiet", *FAST_FIT
    )
    assert fit.returncode == 0, fit.stderr
    report = json.loads((out / "fit_report.json").read_text())
    assert report["head_grouping"] == "global"
    assert report["settings"]["head_grouping"] == "global"
    assert [h["key"] for h in report["heads"]] == ["global"]
    heads = build_norm_heads(resolve_mixture(example_mixture), 32, grouping="global")
    assert report["norm_heads_fingerprint"] == heads.fingerprint
    assert (
        report["norm_heads_fingerprint"] != build_norm_heads(resolve_mixture(example_mixture), 32).fingerprint
    )
    assert {d["head"] for d in report["datasets"]} == {0}

    inspect = fasttok("inspect", str(out))
    assert inspect.returncode == 0, inspect.stderr
    assert "heads by global" in inspect.stdout


def test_the_default_fit_reports_robot_control(example_mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tokenizer"
    assert fasttok("fit", str(example_mixture), "--out", str(out), "--quiet", *FAST_FIT).returncode == 0
    report = json.loads((out / "fit_report.json").read_text())
    assert report["head_grouping"] == "robot_control"
    assert (
        report["norm_heads_fingerprint"] == build_norm_heads(resolve_mixture(example_mixture), 32).fingerprint
    )
    assert "heads by robot_control" in fasttok("inspect", str(out)).stdout


def test_the_mixture_head_grouping_is_used_and_the_flag_overrides_it(
    example_mixture: Path, tmp_path: Path
) -> None:
    document = json.loads(example_mixture.read_text())
    document["dataset_mixture"]["head_grouping"] = "dataset"  # the example mixture is wrapped
    mixture = example_mixture.with_name("per_dataset.json")
    mixture.write_text(json.dumps(document, indent=2))
    out = tmp_path / "per_dataset"
    assert fasttok("fit", str(mixture), "--out", str(out), "--quiet", *FAST_FIT).returncode == 0
    report = json.loads((out / "fit_report.json").read_text())
    assert report["head_grouping"] == "dataset"
    assert len(report["heads"]) == len(document["dataset_mixture"]["datasets"])

    flagged = tmp_path / "flagged"
    fit = fasttok(
        "fit", str(mixture), "--out", str(flagged), "--head-grouping", "global", "--quiet", *FAST_FIT
    )
    assert fit.returncode == 0, fit.stderr
    assert json.loads((flagged / "fit_report.json").read_text())["head_grouping"] == "global"


def test_an_unknown_head_grouping_exits_2_naming_the_choices(example_mixture: Path, tmp_path: Path) -> None:
    for tool in (fasttok, preflight_cli):
        args = (
            ("fit", str(example_mixture), "--out", str(tmp_path / "t"))
            if tool is fasttok
            else (str(example_mixture),)
        )
        result = tool(*args, "--head-grouping", "per_robot")
        assert result.returncode == 2, result.stderr
        assert "--head-grouping" in result.stderr
        assert "'robot_control', 'global', 'dataset'" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "t").exists()


def test_a_bad_head_grouping_in_the_mixture_names_the_allowed_values_without_a_traceback(
    example_mixture: Path, tmp_path: Path
) -> None:
    document = json.loads(example_mixture.read_text())
    document["dataset_mixture"]["head_grouping"] = "per_robot"
    mixture = example_mixture.with_name("bad.json")
    mixture.write_text(json.dumps(document, indent=2))
    line = next(i for i, text in enumerate(mixture.read_text().splitlines(), 1) if "head_grouping" in text)
    for result in (fasttok("fit", str(mixture), "--out", str(tmp_path / "t")), preflight_cli(str(mixture))):
        # A structural mixture problem is a finding (FT001), like any other: exit 1, nothing sampled.
        assert result.returncode == 1, result.stderr
        text = result.stdout + result.stderr
        assert "FT001" in text
        assert "head_grouping must be one of" in text
        assert '"robot_control", "global", "dataset"' in text
        assert f"bad.json:{line}" in text
        assert "Traceback" not in text
    assert not (tmp_path / "t").exists()


def test_preflight_cli_checks_the_grouping_it_is_given(example_mixture: Path) -> None:
    # The example has an untagged entry: a fallback head (FT104) only under robot_control.
    by_tags = preflight_cli(str(example_mixture), "--format", "json")
    as_global = preflight_cli(str(example_mixture), "--format", "json", "--head-grouping", "global")
    assert "FT104" in by_tags.stdout
    assert "FT104" not in as_global.stdout
    assert as_global.returncode == 0, as_global.stdout + as_global.stderr


def preflight_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``fasttok-preflight`` (``python -m fasttok_plugin.preflight.cli`` when the script is absent)."""
    script = Path(sys.executable).with_name("fasttok-preflight")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fasttok_plugin.preflight.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
