"""Issue #10 "Why" 9: hostile input is refused quickly with a clear error, and what is printed cannot
forge output (control characters, GitHub Actions commands, invalid XML).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.dom.minidom
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.errors import DatasetError, MixtureError, TokenizerFormatError
from fasttok_plugin.lerobot import read_dataset_meta
from fasttok_plugin.mixture import _source, load_mixture
from fasttok_plugin.testing import write_lerobot_dataset

PREFLIGHT = [str(Path(sys.executable).parent / "fasttok-preflight")]


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    env["HF_LEROBOT_HOME"] = str(cwd / "hf_home")
    return subprocess.run(
        [*PREFLIGHT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def clean(proc: subprocess.CompletedProcess[str], status: int) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == status, output
    assert "Traceback" not in output, output
    assert "internal error" not in output, output
    return output


# ------------------------------------------------------------------------------------------ $ref
def test_exponential_ref_fan_out_is_refused_fast(tmp_path: Path) -> None:
    # 7 files of 10 includes each would expand to 10**6 copies (before: 33 s and 1.1 GB).
    for level in range(6):
        members = {f"k{j}": {"$ref": f"f{level + 1}.json"} for j in range(10)}
        (tmp_path / f"f{level}.json").write_text(json.dumps(members))
    (tmp_path / "f6.json").write_text(json.dumps({"v": "x" * 10}))
    (tmp_path / "m.json").write_text(
        json.dumps({"datasets": [{"repo_id": "org/a", "extra": {"$ref": "f0.json"}}]})
    )
    start = time.perf_counter()
    output = clean(run(["m.json"], tmp_path), 2)
    assert time.perf_counter() - start < 10
    assert "more than 10,000 $ref includes" in output
    assert "/datasets/0/extra" in output


def test_a_big_file_included_many_times_is_refused_by_the_value_cap(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_text(json.dumps(list(range(5000))))
    datasets = [{"repo_id": f"org/{i}", "episodes": {"$ref": "big.json"}} for i in range(205)]
    (tmp_path / "m.json").write_text(json.dumps({"datasets": datasets}))
    with pytest.raises(MixtureError, match="more than 1,000,000 JSON values") as info:
        load_mixture(tmp_path / "m.json")
    assert info.value.unreadable


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_ref_to_a_fifo_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "m.json").write_text(json.dumps({"datasets": [{"$ref": "pipe.json"}]}))
    output = clean(run(["m.json"], tmp_path, timeout=30), 2)
    assert "pipe.json: not a regular file" in output
    assert "/datasets/0/$ref" in output


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_ref_to_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps({"datasets": [{"$ref": "/dev/zero"}]}))
    output = clean(run(["m.json"], tmp_path, timeout=30), 2)
    assert "/dev/zero: not a regular file" in output


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_source, "MAX_FILE_BYTES", 1000)
    (tmp_path / "big.json").write_text(json.dumps({"repo_id": "org/a", "pad": "x" * 2000}))
    (tmp_path / "m.json").write_text(json.dumps({"datasets": [{"$ref": "big.json"}]}))
    with pytest.raises(MixtureError, match=r"big\.json: larger than") as info:
        load_mixture(tmp_path / "m.json")
    assert info.value.problems[0].pointer == "/datasets/0/$ref"


def test_a_ref_to_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sub.json").mkdir()
    (tmp_path / "m.json").write_text(json.dumps({"datasets": [{"$ref": "sub.json"}]}))
    with pytest.raises(MixtureError, match=r"sub\.json: a directory"):
        load_mixture(tmp_path / "m.json")


# ---------------------------------------------------------------------------- dataset and folder
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_for_info_json_is_a_dataset_error(tmp_path: Path) -> None:
    write_lerobot_dataset(tmp_path / "ds", episode_lengths=(20, 30), action_dim=2)
    info = tmp_path / "ds" / "meta" / "info.json"
    info.unlink()
    os.mkfifo(info)
    with pytest.raises(DatasetError, match="not a regular file") as caught:
        read_dataset_meta(tmp_path / "ds", name="org/a")
    assert caught.value.reason == "info_invalid"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_a_tokenizer_folder_is_a_format_error(tmp_path: Path) -> None:
    chunks = np.random.default_rng(0).normal(size=(64, 10, 2)).astype(np.float32)
    folder = FastTokenizer.fit(chunks, vocab_size=300).save(tmp_path / "tok")
    (folder / "processor_config.json").unlink()
    os.mkfifo(folder / "processor_config.json")
    with pytest.raises(TokenizerFormatError, match="not a regular file"):
        FastTokenizer.load(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_fit_report_is_a_fit_error(tmp_path: Path) -> None:
    from fasttok_plugin.errors import FitError
    from fasttok_plugin.fit import FitReport

    os.mkfifo(tmp_path / "fit_report.json")
    with pytest.raises(FitError, match="not a regular file"):
        FitReport.load(tmp_path)


# -------------------------------------------------------------------------------- output forging
HOSTILE_REPO_ID = "org/a\n::error::forged\u0001\x1b[31m\ud800"


@pytest.fixture
def hostile_mixture(tmp_path: Path) -> Path:
    # The entry's root is missing, so the preflight reports it (and prints its name).
    (tmp_path / "m.json").write_text(json.dumps({"datasets": [{"repo_id": HOSTILE_REPO_ID, "root": "gone"}]}))
    return tmp_path


def test_text_output_escapes_control_characters(hostile_mixture: Path) -> None:
    output = clean(run(["m.json"], hostile_mixture), 1)
    assert "org/a\\n::error::forged\\x01\\x1b[31m\\ud800" in output
    # No line may start a GitHub Actions command, and no raw control character reaches the terminal.
    assert not [line for line in output.splitlines() if line.startswith("::")]
    assert not any(ord(c) < 32 and c != "\n" for c in output)


def test_github_output_has_exactly_one_command_per_finding(hostile_mixture: Path) -> None:
    output = clean(run(["m.json", "--format", "github"], hostile_mixture), 1)
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("::error ")
    assert "%0A::error::forged\\x01\\x1b[31m\\ud800" in lines[0]


def test_junit_output_is_valid_xml(hostile_mixture: Path) -> None:
    proc = run(["m.json", "--format", "junit"], hostile_mixture)
    clean(proc, 1)
    document = xml.dom.minidom.parseString(proc.stdout.encode())
    names = [case.getAttribute("name") for case in document.getElementsByTagName("testcase")]
    assert "[0] org/a\\n::error::forged\\x01\\x1b[31m\\ud800" in names


def test_json_output_keeps_the_name_exactly(hostile_mixture: Path) -> None:
    proc = run(["m.json", "--format", "json"], hostile_mixture)
    clean(proc, 1)
    names = {f["entry"]["name"] for f in json.loads(proc.stdout)["findings"] if f.get("entry")}
    assert names == {HOSTILE_REPO_ID}


def test_unreadable_mixture_message_is_printable(tmp_path: Path) -> None:
    # A $ref naming a missing file whose name carries a forged command.
    (tmp_path / "m.json").write_text(json.dumps({"datasets": [{"$ref": "x\n::error::forged.json"}]}))
    output = clean(run(["m.json"], tmp_path), 2)
    assert not [line for line in output.splitlines() if line.startswith("::")]
    assert "x\\n::error::forged.json" in output
