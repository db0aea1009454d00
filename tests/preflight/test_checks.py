"""Each built-in check fires on a dataset on disk that has its problem, and is quiet on one without it."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from fasttok_plugin.heads import SkippedEntry, build_norm_heads
from fasttok_plugin.preflight import Finding, PreflightResult, Severity, run_preflight
from fasttok_plugin.resolve import resolve_mixture

Build = Callable[..., Path]
Spec = Callable[..., object]


def with_code(result: PreflightResult, code: str) -> list[Finding]:
    return [f for f in result.findings if f.code == code]


def codes(result: PreflightResult) -> set[str]:
    return {f.code for f in result.findings}


def run(path: Path, **kwargs) -> PreflightResult:
    # Entry points are off so a plugin installed in the environment cannot change what these tests see.
    return run_preflight(path, entry_points=False, **kwargs)


# --------------------------------------------------------------------------- require_non_empty (FT101/FT102)
def test_require_non_empty_robot_type_lists_every_offender_with_its_override(
    build_mixture: Build, ds: Spec
) -> None:
    path = build_mixture(
        ds("no_tag", robot_type=None),
        ds("blank_override", entry={"robot_type": "  "}),
        ds("tagged"),
        require_non_empty_robot_type=True,
    )
    found = with_code(run(path), "FT101")
    assert [(f.entry_index, f.entry_name) for f in found] == [(0, "test/no_tag"), (1, "test/blank_override")]
    assert all(f.severity is Severity.ERROR for f in found)
    no_tag, blank = found
    assert "meta/info.json" in no_tag.message
    assert no_tag.pointer == "/datasets/0"  # no override in the file: point at the entry
    assert blank.pointer == "/datasets/1/robot_type"  # the blank override itself
    assert "the mixture entry" in blank.message
    assert '"robot_type"' in no_tag.hint
    assert "/datasets/0" in no_tag.hint
    assert no_tag.line is not None
    assert no_tag.file == path


def test_require_non_empty_control_mode(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("no_mode", control_mode=None), require_non_empty_control_mode=True)
    found = with_code(run(path), "FT102")
    assert [f.entry_index for f in found] == [0]
    assert "control_mode" in found[0].message
    assert '"control_mode"' in found[0].hint


def test_require_non_empty_is_quiet_when_tags_are_usable_or_fixed_by_override(
    build_mixture: Build, ds: Spec
) -> None:
    path = build_mixture(
        ds("tagged"),
        ds(
            "fixed",
            robot_type="unknown",
            control_mode=None,
            entry={"robot_type": "arm", "control_mode": "pos"},
        ),
        require_non_empty_robot_type=True,
        require_non_empty_control_mode=True,
    )
    assert not codes(run(path)) & {"FT101", "FT102"}


def test_missing_tags_without_require_flag_are_not_errors(build_mixture: Build, ds: Spec) -> None:
    result = run(build_mixture(ds("no_tag", robot_type=None)))
    assert not codes(result) & {"FT101", "FT102"}
    assert result.ok


# --------------------------------------------------------------------------- duplicate fallbacks (FT103)
def test_duplicate_fallback_repo_id_is_a_warning_naming_both_entries(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("dup", robot_type=None), ds("other"), ds("dup", robot_type=None))
    result = run(path)
    found = with_code(result, "FT103")
    assert len(found) == 1
    assert found[0].severity is Severity.WARNING
    assert found[0].entry_index == 2
    assert "test/dup#0" in found[0].message
    assert "test/dup#1" in found[0].message
    assert result.ok  # warnings do not fail a normal run


def test_duplicate_fallback_is_an_error_under_strict(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("dup", robot_type=None), ds("dup", robot_type=None))
    result = run(path, strict=True)
    assert [f.severity for f in with_code(result, "FT103")] == [Severity.ERROR]
    assert not result.ok


def test_duplicate_repo_id_with_usable_tags_is_not_a_duplicate_fallback(
    build_mixture: Build, ds: Spec
) -> None:
    path = build_mixture(ds("dup"), ds("dup"))  # same head arm::pos: intentional upweighting, not a mistake
    assert "FT103" not in codes(run(path, strict=True))


# --------------------------------------------------------------------------- fallback heads (FT104)
def test_fallback_head_is_reported_as_info_with_the_missing_tag(build_mixture: Build, ds: Spec) -> None:
    result = run(build_mixture(ds("tagged"), ds("untagged", control_mode=None)))
    found = with_code(result, "FT104")
    assert [(f.entry_index, f.severity) for f in found] == [(1, Severity.INFO)]
    assert "control_mode is missing" in found[0].message
    assert result.ok


def test_tagged_entries_have_no_fallback_info(build_mixture: Build, ds: Spec) -> None:
    assert "FT104" not in codes(run(build_mixture(ds("tagged"))))


# --------------------------------------------------------------------------- action dims (FT201/FT105)
def test_action_dim_overflow_is_an_error_with_the_needed_dim(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("wide", action_dim=40), ds("narrow"))
    found = with_code(run(path, max_action_dim=32), "FT201")
    assert [(f.entry_index, f.severity) for f in found] == [(0, Severity.ERROR)]
    assert "40" in found[0].message
    assert "32" in found[0].message
    assert "at least 40" in found[0].hint


def test_action_dim_within_max_action_dim_is_fine(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("wide", action_dim=40))
    assert "FT201" not in codes(run(path, max_action_dim=40))


def test_max_action_dim_from_the_mixture_file_is_used(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("wide", action_dim=12), max_action_dim=8)
    assert "FT201" in codes(run(path))
    assert "FT201" not in codes(run(path, max_action_dim=16))  # the argument wins over the file


def test_incompatible_dims_within_a_head_are_an_error(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("seven", action_dim=7), ds("six", action_dim=6))
    found = with_code(run(path), "FT105")
    assert [(f.entry_index, f.severity) for f in found] == [(1, Severity.ERROR)]
    assert "arm::pos" in found[0].message
    assert "test/seven: 7" in found[0].message


def test_incompatible_dims_flag_the_entry_that_differs_from_the_majority(
    build_mixture: Build, ds: Spec
) -> None:
    path = build_mixture(ds("six", action_dim=6), ds("seven", action_dim=7), ds("seven_b", action_dim=7))
    found = with_code(run(path), "FT105")
    assert [f.entry_index for f in found] == [0]
    assert "differs from 7 of 'test/seven'" in found[0].message


def test_different_dims_in_different_heads_are_fine(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("seven", action_dim=7), ds("six", action_dim=6, robot_type="other_arm"))
    assert "FT105" not in codes(run(path))


# --------------------------------------------------------------------------- dataset metadata (FT301-FT304)
def test_missing_root_points_at_the_root_field(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("present"), ds("absent", write=False))
    found = with_code(run(path), "FT301")
    assert [f.entry_index for f in found] == [1]
    assert found[0].pointer == "/datasets/1/root"
    assert "does not exist" in found[0].message
    assert found[0].hint


def test_unreadable_info_json_is_an_error(build_mixture: Build, ds: Spec, tmp_path: Path) -> None:
    path = build_mixture(ds("broken"), ds("fine"))
    (tmp_path / "datasets" / "broken" / "meta" / "info.json").write_text("{not json")
    found = with_code(run(path), "FT302")
    assert [f.entry_index for f in found] == [0]
    assert "info.json" in found[0].message


def test_metadata_without_features_is_an_error(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("no_features", info_overrides={"features": None}))
    assert [f.entry_index for f in with_code(run(path), "FT302")] == [0]


def test_unsupported_version_is_an_error(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("old", info_overrides={"codebase_version": "v1.6"}))
    found = with_code(run(path), "FT303")
    assert [f.entry_index for f in found] == [0]
    assert "v1.6" in found[0].message


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_readable_datasets_have_no_metadata_findings(build_mixture: Build, ds: Spec, version: str) -> None:
    result = run(build_mixture(ds("fine", version=version)))
    assert not codes(result) & {"FT301", "FT302", "FT303", "FT304"}
    assert result.findings == ()


def test_skipped_entry_without_another_explanation_is_reported(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("a"), ds("b", robot_type="other"))
    resolved = resolve_mixture(path)
    heads = build_norm_heads(resolved, 32)
    # A record the heads may emit for reasons the other checks do not know about must not vanish.
    odd = dataclasses.replace(
        heads, skipped_entries=(SkippedEntry(1, "test/b", "a reason nobody else reports"),)
    )
    found = with_code(run(path, resolved=resolved, norm_heads=odd), "FT304")
    assert [(f.entry_index, f.message) for f in found] == [
        (1, "left out of the norm heads: a reason nobody else reports")
    ]
    assert "FT304" not in codes(run(path, resolved=resolved, norm_heads=heads))


# --------------------------------------------------------------------------- stats (FT202-FT204)
def test_missing_stats_are_an_error(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("no_stats", write_stats=False, write_episode_stats=False), ds("fine"))
    found = with_code(run(path), "FT202")
    assert [(f.entry_index, f.severity) for f in found] == [(0, Severity.ERROR)]
    assert "FT304" not in codes(run(path))  # the skipped entry is explained once, by FT202


def test_stats_lacking_the_action_key_are_an_error(build_mixture: Build, ds: Spec, tmp_path: Path) -> None:
    path = build_mixture(ds("no_action_stats", write_episode_stats=False))
    stats_path = tmp_path / "datasets" / "no_action_stats" / "meta" / "stats.json"
    stats = json.loads(stats_path.read_text())
    del stats["action"]
    stats_path.write_text(json.dumps(stats))
    found = with_code(run(path), "FT202")
    assert [f.entry_index for f in found] == [0]
    assert "'action'" in found[0].message


def test_v21_stats_aggregated_from_episode_stats_are_fine(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("episode_stats_only", version="v2.1", write_stats=False))
    assert "FT202" not in codes(run(path))


def test_non_finite_stats_are_a_warning_when_other_members_cover_the_dim(
    build_mixture: Build, ds: Spec
) -> None:
    path = build_mixture(ds("finite"), ds("infinite", stats_override={"max": [math.inf, 1.0, 1.0, 1.0]}))
    result = run(path)
    found = with_code(result, "FT203")
    assert [(f.entry_index, f.severity) for f in found] == [(1, Severity.WARNING)]
    assert "max[0]" in found[0].message
    assert "FT204" not in codes(result)
    assert result.ok


def test_head_dim_without_any_finite_value_is_an_error(build_mixture: Build, ds: Spec) -> None:
    nan_dim0 = {"min": [math.nan, 0.0, 0.0, 0.0], "max": [math.nan, 1.0, 1.0, 1.0]}
    path = build_mixture(ds("nan_dim", stats_override=nan_dim0))
    result = run(path)
    found = with_code(result, "FT204")
    assert [(f.entry_index, f.severity) for f in found] == [(0, Severity.ERROR)]
    assert "dim 0" in found[0].message
    assert "[-1, 1]" in found[0].message
    assert not result.ok


def test_finite_stats_have_no_stats_findings(build_mixture: Build, ds: Spec) -> None:
    assert not codes(run(build_mixture(ds("fine")))) & {"FT202", "FT203", "FT204"}


# --------------------------------------------------------------------------- weights (FT003)
@pytest.mark.parametrize(
    ("weights", "fragment"),
    [([1.0], "weights"), ([1.0, -1.0], "-1"), ([0.0, 0.0], "zero"), ([1.0, math.nan], "nan")],
)
def test_invalid_weights_are_errors(
    build_mixture: Build, ds: Spec, weights: list[float], fragment: str
) -> None:
    path = build_mixture(ds("a"), ds("b"), weights=weights)
    found = with_code(run(path), "FT003")
    assert found
    assert all(f.severity is Severity.ERROR for f in found)
    assert fragment in " ".join(f.message.lower() for f in found)
    assert all(f.pointer.startswith("/weights") for f in found)


def test_valid_weights_are_fine(build_mixture: Build, ds: Spec) -> None:
    assert "FT003" not in codes(run(build_mixture(ds("a"), ds("b"), weights=[1.0, 0.0])))


# --------------------------------------------------------------------------- unknown keys (FT002)
def test_unknown_key_is_a_warning_with_the_close_match(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("a", entry={"robot_typ": "arm"}), require_non_empty_robottype=True)
    found = with_code(run(path), "FT002")
    assert {f.pointer for f in found} == {"/require_non_empty_robottype", "/datasets/0/robot_typ"}
    assert all(f.severity is Severity.WARNING for f in found)
    by_pointer = {f.pointer: f for f in found}
    assert "'require_non_empty_robot_type'" in by_pointer["/require_non_empty_robottype"].message
    assert by_pointer["/datasets/0/robot_typ"].entry_index == 0
    lines = path.read_text().splitlines()
    expected_line = next(i for i, text in enumerate(lines, 1) if '"require_non_empty_robottype"' in text)
    assert by_pointer["/require_non_empty_robottype"].line == expected_line


def test_known_keys_only_give_no_unknown_key_warning(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(
        ds("a", entry={"robot_type": "arm", "weight": 2.0}), require_non_empty_robot_type=True
    )
    assert "FT002" not in codes(run(path))


# --------------------------------------------------------------------------- episode lengths (FT401/FT402)
def test_no_episode_fitting_one_chunk_is_an_error_with_the_largest_chunk_that_fits(
    build_mixture: Build, ds: Spec
) -> None:
    path = build_mixture(ds("short", episode_lengths=(10, 12)), ds("long"))
    found = with_code(run(path, chunk_size=50), "FT401")
    assert [(f.entry_index, f.severity) for f in found] == [(0, Severity.ERROR)]
    assert "at most 12" in found[0].hint  # 12 frames at 30 fps fit a 12-step chunk at 30 Hz


def test_some_short_episodes_are_a_warning_with_the_fraction(build_mixture: Build, ds: Spec) -> None:
    # (L-1)/fps >= (chunk_size-1)/freq: at chunk_size 50 and 30 Hz, 49 frames are too short, 50 fit exactly.
    path = build_mixture(ds("mixed", episode_lengths=(49, 50, 80, 120)))
    found = with_code(run(path, chunk_size=50), "FT402")
    assert [(f.entry_index, f.severity) for f in found] == [(0, Severity.WARNING)]
    assert "1 of 4 episodes (25%)" in found[0].message


def test_episodes_fitting_the_chunk_are_fine(build_mixture: Build, ds: Spec) -> None:
    result = run(build_mixture(ds("long", episode_lengths=(50, 80))), chunk_size=50)
    assert not codes(result) & {"FT401", "FT402"}


def test_action_freq_changes_the_chunk_span(build_mixture: Build, ds: Spec) -> None:
    # 80 frames at 30 fps span 2.63 s; 50 steps at 10 Hz span 4.9 s, so nothing fits once resampled.
    native = build_mixture(ds("ep", episode_lengths=(60, 80)), name="native.json")
    slow = build_mixture(ds("ep", episode_lengths=(60, 80)), name="slow.json", action_freq=10.0)
    assert not codes(run(native, chunk_size=50)) & {"FT401", "FT402"}
    assert [f.entry_index for f in with_code(run(slow, chunk_size=50), "FT401")] == [0]


def test_chunk_size_from_the_mixture_file_is_used(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("ep", episode_lengths=(60, 80)), chunk_size=70)
    assert "FT402" in codes(run(path))
    assert "FT402" not in codes(run(path, chunk_size=50))


def test_episode_selection_is_what_gets_checked(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("sel", episode_lengths=(10, 80), entry={"episodes": [1]}))
    assert not codes(run(path, chunk_size=50)) & {"FT401", "FT402"}


# ------------------------------------------------------------------ structure (FT001) and the clean case
def test_structurally_invalid_mixture_gives_ft001_findings_instead_of_raising(
    build_mixture: Build, write_mixture_file: Callable[..., Path]
) -> None:
    path = write_mixture_file({"datasets": [{"root": "x"}, {"repo_id": 3}]})
    result = run(path)
    found = with_code(result, "FT001")
    assert {f.entry_index for f in found} == {0, 1}
    assert all(f.severity is Severity.ERROR and f.line is not None for f in found)
    assert not result.ok


def test_clean_mixture_has_no_findings(build_mixture: Build, ds: Spec) -> None:
    specs = [ds("a", version="v2.1"), ds("b", version="v3.0"), ds("c", robot_type="other", action_dim=7)]
    result = run(build_mixture(*specs, require_non_empty_robot_type=True, weights=[1, 2, 3]))
    assert result.findings == ()
    assert result.ok
    assert result.n_datasets == 3


def test_findings_in_a_ref_included_file_point_at_that_file(
    build_mixture: Build, ds: Spec, tmp_path: Path
) -> None:
    build_mixture(ds("a"))  # writes the dataset
    included = tmp_path / "entry.json"
    included.write_text('{\n  "repo_id": "test/a",\n  "root": "datasets/a",\n  "robot_typ": "arm"\n}\n')
    path = tmp_path / "with_ref.json"
    path.write_text(json.dumps({"datasets": [{"$ref": "entry.json"}]}, indent=2))
    (finding,) = with_code(run(path), "FT002")
    assert finding.file == included
    assert finding.line == 4
    assert finding.entry_index == 0


# --------------------------------------------------------------------------- min > max (FT205)
def test_stats_with_min_above_max_are_an_error_naming_dim_and_values(build_mixture: Build, ds: Spec) -> None:
    swapped = {"min": [2.0, 0.0, 0.0, 0.0], "max": [-2.0, 1.0, 1.0, 1.0]}
    path = build_mixture(ds("fine"), ds("swapped", stats_override=swapped, robot_type="other"))
    result = run(path)
    found = with_code(result, "FT205")
    assert [(f.entry_index, f.entry_name, f.severity) for f in found] == [(1, "test/swapped", Severity.ERROR)]
    assert "dim 0 (min 2 > max -2)" in found[0].message
    assert "meta/stats.json" in found[0].message
    assert "'action'" in found[0].message
    assert "recompute the dataset stats" in found[0].hint
    assert not result.ok


def test_ordered_stats_have_no_min_above_max_finding(build_mixture: Build, ds: Spec) -> None:
    equal = {"min": [0.5, 0.0, 0.0, 0.0], "max": [0.5, 1.0, 1.0, 1.0]}  # a constant dim is min == max
    assert "FT205" not in codes(run(build_mixture(ds("fine"), ds("const", stats_override=equal))))


# --------------------------------------------------------------------------- timestamps (FT501)
def _scale_timestamp_stats(root: Path, factor: float) -> None:
    """Multiply every timestamp stat in the metadata by ``factor`` (as if written in other units)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stats_json = root / "meta" / "stats.json"
    if stats_json.is_file():
        stats = json.loads(stats_json.read_text())
        stats["timestamp"] = {
            k: [v * factor for v in vs] for k, vs in stats["timestamp"].items() if k != "count"
        }
        stats_json.write_text(json.dumps(stats))
    jsonl = root / "meta" / "episodes_stats.jsonl"
    if jsonl.is_file():
        lines = []
        for line in jsonl.read_text().splitlines():
            record = json.loads(line)
            ts = record["stats"]["timestamp"]
            record["stats"]["timestamp"] = {
                k: v if k == "count" else [x * factor for x in v] for k, v in ts.items()
            }
            lines.append(json.dumps(record))
        jsonl.write_text("\n".join(lines) + "\n")
    for table_path in (root / "meta" / "episodes").glob("chunk-*/file-*.parquet"):
        table = pq.read_table(table_path)
        for name in ("stats/timestamp/min", "stats/timestamp/max"):
            if name in table.column_names:
                values = [[x * factor for x in row] for row in table.column(name).to_pylist()]
                index = table.column_names.index(name)
                table = table.set_column(index, name, pa.array(values, type=table.schema.field(name).type))
        pq.write_table(table, table_path)


@pytest.mark.parametrize("version", ["v3.0", "v2.1"])
def test_millisecond_timestamps_are_an_error_with_the_rate_they_suggest(
    build_mixture: Build, ds: Spec, tmp_path: Path, version: str
) -> None:
    path = build_mixture(ds("fine", version=version), ds("millis", version=version, robot_type="other"))
    _scale_timestamp_stats(tmp_path / "datasets" / "millis", 1000.0)
    result = run(path)
    found = with_code(result, "FT501")
    assert [(f.entry_index, f.severity) for f in found] == [(1, Severity.ERROR)]
    message = found[0].message
    assert message.startswith("episode ")
    assert "info.json fps=30" in message
    assert "(x1e+03)" in message
    assert "the timestamps suggest 0.03 Hz" in message
    assert "seconds (not milliseconds)" in found[0].hint
    assert not result.ok


def test_a_wrong_info_fps_is_an_error_from_the_v3_episode_tables(build_mixture: Build, ds: Spec) -> None:
    # 30 Hz frames (timestamps i / 30, and so their stats) whose info.json says 10 fps.
    path = build_mixture(ds("wrong_fps", info_overrides={"fps": 10}))
    found = with_code(run(path), "FT501")
    assert [f.severity for f in found] == [Severity.ERROR]
    assert "meta/episodes stats/timestamp" in found[0].message
    assert "fps=10" in found[0].message
    assert "the timestamps suggest 30 Hz" in found[0].message


def test_stats_json_timestamps_are_checked_against_the_longest_episode(
    build_mixture: Build, ds: Spec, tmp_path: Path
) -> None:
    path = build_mixture(ds("global_only", version="v2.1", write_episode_stats=False))
    _scale_timestamp_stats(tmp_path / "datasets" / "global_only", 1000.0)
    found = with_code(run(path), "FT501")
    assert len(found) == 1
    assert found[0].message.startswith("longest episode (1): timestamps span")
    assert "(meta/stats.json)" in found[0].message


def test_a_span_off_by_a_few_percent_is_a_warning(build_mixture: Build, ds: Spec, tmp_path: Path) -> None:
    path = build_mixture(ds("drift"))
    _scale_timestamp_stats(tmp_path / "datasets" / "drift", 1.2)
    result = run(path)
    assert [f.severity for f in with_code(result, "FT501")] == [Severity.WARNING]
    assert [f.severity for f in with_code(run(path, strict=True), "FT501")] == [Severity.ERROR]


def test_timestamps_matching_fps_have_no_timing_finding(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(
        ds("v3"), ds("v2", version="v2.1"), ds("v2_global", version="v2.1", write_episode_stats=False)
    )
    assert "FT501" not in codes(run(path))


# --------------------------------------------------------------------------- budgets (FT503/FT504)
def test_a_positive_weight_rounding_to_zero_chunks_is_a_warning_and_an_error_under_strict(
    build_mixture: Build, ds: Spec
) -> None:
    path = build_mixture(ds("big"), ds("tiny"), ds("off"), weights=[1.0, 1e-9, 0.0])
    found = with_code(run(path), "FT503")
    assert [(f.entry_index, f.severity) for f in found] == [(1, Severity.WARNING)]
    assert "weight 1e-09 is positive but gets 0 of the default total_chunks=100000" in found[0].message
    assert "raise its weight" in found[0].hint
    strict = run(path, strict=True)
    assert [f.severity for f in with_code(strict, "FT503")] == [Severity.ERROR]
    assert not strict.ok


def test_a_head_with_a_handful_of_chunks_is_a_tiny_weight_head(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("big"), ds("small", robot_type="other"), weights=[1.0, 5e-5])
    result = run(path)
    found = with_code(result, "FT504")
    assert [(f.entry_index, f.severity) for f in found] == [(1, Severity.WARNING)]
    assert "(test/small) gets 5 of the default total_chunks=100000: fewer than 10" in found[0].message
    assert "FT503" not in codes(result)


def test_the_preflight_defaults_are_the_fits() -> None:
    from fasttok_plugin.fit import DEFAULT_HELDOUT_FRACTION, DEFAULT_TOTAL_CHUNKS
    from fasttok_plugin.preflight.checks.budgets import MIN_HEAD_CHUNKS, TOTAL_CHUNKS_DEFAULT

    assert TOTAL_CHUNKS_DEFAULT == DEFAULT_TOTAL_CHUNKS
    assert round(1 / DEFAULT_HELDOUT_FRACTION) == MIN_HEAD_CHUNKS


def test_even_weights_have_no_budget_findings(build_mixture: Build, ds: Spec) -> None:
    path = build_mixture(ds("a"), ds("b", robot_type="other"), weights=[1e308, 1e308])
    assert not codes(run(path)) & {"FT503", "FT504"}
