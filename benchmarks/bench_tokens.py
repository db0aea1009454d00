"""Benchmark: tokens vs round-trip error of the reference FAST and of our codec settings, on one corpus.

Usage::

    python benchmarks/bench_tokens.py                 # 13 datasets / 7 robots, chunks 30 x 32, vocab 2048
    python benchmarks/bench_tokens.py --quick         # smoke test (seconds)
    python benchmarks/bench_tokens.py --png curves.png --scales 5 10 20 40

Writes a generated multi-robot LeRobot mixture (real parquet datasets via `fasttok_plugin.testing`) whose
trajectories look like robot data: reaching motions between random waypoints (minimum-jerk segments),
teleoperation noise, binary grippers, and noisy velocity commands for the mobile robots. It samples and
normalizes the mixture once with the fit pipeline's own `FitPlan` (episode-level held-out split, the
policy's `Normalize`), so every row below is fit on the same chunks and measured on the same held-out
chunks. ``padded`` rows fit and encode the ``T x max_action_dim`` chunks; ``native`` rows fit and encode
each chunk at its entry's native width (`fasttok_plugin.fit.plan.entry_widths`, the ``action_dims`` the
fit pipeline streams with ``layout="native"``). For each codec setting and each ``--scales`` value it fits
a tokenizer and reports held-out mean, p99 and max tokens against the round-trip MSE in normalized units,
over the native dims of every row (whatever the layout, so the rows are comparable). The MSE is each
tokenizer's own ``decode(encode(x))`` error: ``token_aware`` rows (`fasttok_plugin.codec.rounding`) round
some values the other way, so their error is larger than the nearest rows' at the same scale. Then, per
setting, its tokens are interpolated (log-log) at the reference's MSE of every scale: the ratio at matched
MSE. A row whose MSE range does not hold every reference MSE is also fit at 2x the largest (or half the
smallest) scale until it does, so the interpolation never clamps at an end.
Writes a PNG of the curves when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.fit import FitPlan, FitSettings
from fasttok_plugin.fit.source import prepare_fit
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture

# (label, pipeline, order, max_token_length or "T": the chunk size, layout, rounding). A token_aware row's
# label is its nearest twin's plus ", token_aware" (the PNG draws it dashed in the twin's colour).
SETTINGS: tuple[tuple[str, str, str, Any, str, str], ...] = (
    ("reference FAST (time)", "reference", "time", 10000, "padded", "nearest"),
    ("char, time (default)", "char", "time", 10000, "padded", "nearest"),
    ("char, dc_dims", "char", "dc_dims", 10000, "padded", "nearest"),
    ("char, dims", "char", "dims", 10000, "padded", "nearest"),
    ("char, dims, merge cap T", "char", "dims", "T", "padded", "nearest"),
    ("native, time", "char", "time", 10000, "native", "nearest"),
    ("native, dc_dims", "char", "dc_dims", 10000, "native", "nearest"),
    ("native, dims", "char", "dims", 10000, "native", "nearest"),
    ("char, time, token_aware", "char", "time", 10000, "padded", "token_aware"),
    ("native, time, token_aware", "char", "time", 10000, "native", "token_aware"),
    ("native, dc_dims, token_aware", "char", "dc_dims", 10000, "native", "token_aware"),
    ("native, dims, token_aware", "char", "dims", 10000, "native", "token_aware"),
)
#: The rows of ``--quick`` (a smoke test): the reference, the padded orders, a native row and its
#: token-aware twin.
QUICK = (
    "reference FAST (time)",
    "char, time (default)",
    "char, dc_dims",
    "char, dims",
    "native, dims",
    "native, dims, token_aware",
)
#: Width of the label column of the printed tables.
LABEL = 30
# (robot, control mode, action dim, gripper dims, velocity control) of the generated datasets.
ROBOTS = (
    ("franka", "joint_pos", 8, 1, False),
    ("ur5e", "joint_pos", 7, 1, False),
    ("aloha", "joint_pos", 14, 2, False),
    ("so100", "joint_pos", 6, 1, False),
    ("widowx", "ee_delta", 7, 1, False),
    ("stretch", "velocity", 3, 0, True),
    ("h1", "joint_pos", 19, 0, False),
)


def trajectory(rng: np.random.Generator, length: int, dim: int, grippers: int, velocity: bool) -> np.ndarray:
    """One episode: minimum-jerk reaches between waypoints + noise, binary grippers (last dims)."""
    arm = dim - grippers
    if velocity:  # smoothed random velocity commands with sensor noise
        raw = rng.normal(0, 1, size=(length + 21, arm)).cumsum(axis=0)
        kernel = np.hanning(21) / np.hanning(21).sum()
        smooth = np.stack([np.convolve(raw[:, j], kernel, mode="valid") for j in range(arm)], axis=1)
        out = np.diff(smooth[: length + 1], axis=0) * 2.0 + rng.normal(0, 0.05, size=(length, arm))
    else:
        out = np.empty((length, arm))
        position = rng.uniform(-1, 1, size=arm)
        t = 0
        while t < length:
            duration = int(rng.integers(15, 60))
            target = np.clip(position + rng.normal(0, 0.5, size=arm), -1.5, 1.5)
            s = np.linspace(0, 1, duration)
            blend = 10 * s**3 - 15 * s**4 + 6 * s**5  # minimum jerk
            segment = position + (target - position) * blend[:, None]
            n = min(duration, length - t)
            out[t : t + n] = segment[:n]
            position, t = target, t + n
        out += rng.normal(0, 0.01, size=out.shape)  # teleoperation / sensor noise
    if grippers:
        switches = rng.random((length, grippers)) < 0.02
        state = (np.cumsum(switches, axis=0) + rng.integers(0, 2, size=(1, grippers))) % 2
        out = np.concatenate([out, state.astype(np.float64)], axis=1)
    return (out * rng.uniform(0.5, 2.0, size=(1, dim))).astype(np.float32)


def write_corpus(root: Path, n_datasets: int, episodes: int, seed: int) -> Path:
    """A mixture of ``n_datasets`` datasets cycling through `ROBOTS` (written with pyarrow)."""
    rng = np.random.default_rng(seed)
    entries, weights = [], []
    for i in range(n_datasets):
        robot, mode, dim, grippers, velocity = ROBOTS[i % len(ROBOTS)]
        lengths = rng.integers(120, 400, size=episodes)
        actions = [trajectory(rng, int(n), dim, grippers, velocity) for n in lengths]
        name = f"{robot}_{i:02d}"
        write_lerobot_dataset(
            root / name,
            version="v3.0" if i % 2 else "v2.1",
            robot_type=robot,
            control_mode=mode,
            actions=actions,
            seed=seed + i,
        )
        entries.append({"repo_id": f"bench/{name}", "root": name})
        weights.append(float(rng.uniform(0.5, 2.0)))
    document = {"dataset_mixture": {"datasets": entries, "weights": weights, "action_freq": 30.0}}
    return write_mixture(root / "mixture.json", document)


class Corpus(NamedTuple):
    """The sampled chunks every row is fit and measured on (normalized, ``T x max_action_dim``)."""

    fit: np.ndarray
    fit_widths: np.ndarray  # each fit chunk's native width (its entry's action dim)
    held: np.ndarray
    held_widths: np.ndarray
    mask: np.ndarray  # held-out native dims (what the MSE averages over, for every row)


def sample(mixture: Path, settings: FitSettings) -> Corpus:
    """The fit and held-out chunks, normalized and split as the fit pipeline does (`FitPlan`).

    ``settings.layout`` is ``native``, so the batches carry each chunk's native width (``action_dims``)
    as `fasttok_plugin.fit.pipeline` streams them; the padded rows use the same chunks at full width
    (Normalize is per dim: a native chunk is the padded one's first ``w`` dims).
    """
    from fasttok_plugin.fit._progress import PhaseClock
    from fasttok_plugin.normalize import Normalize

    prepared = prepare_fit(mixture, settings, preflight=False, clock=PhaseClock())
    s, heads = prepared.settings, prepared.heads
    plan = FitPlan(prepared.sampler, Normalize(heads, mode=s.normalization, zero_range=s.zero_range), s)
    fit = list(plan.fit_batches())
    held = list(plan.heldout_batches())
    chunks = np.concatenate([b.normalized for b in held])
    native = np.asarray(heads.native_dims)[np.concatenate([b.head_index for b in held])]
    mask = np.arange(chunks.shape[2])[None, None, :] < native[:, None, None]
    return Corpus(
        fit=np.concatenate([b.normalized for b in fit]),
        fit_widths=np.concatenate([b.action_dims for b in fit]),
        held=chunks,
        held_widths=np.concatenate([b.action_dims for b in held]),
        mask=np.broadcast_to(mask, chunks.shape),
    )


class Point(NamedTuple):
    """One fit of one setting, measured on the held-out chunks."""

    scale: float
    mse: float  # round-trip MSE, decode(encode(x)) against x, over the native dims
    mean: float
    p99: float
    max: int
    seconds: float  # fit
    encode_ms: float  # encode of one held-out chunk (the batch's time / its chunks)


#: A row's MSE range must hold every reference MSE to within this share (the nearest rows decode the
#: same quantized values at a scale, so they only differ by float noise).
BRACKET_TOLERANCE = 1e-3


def twin(label: str) -> str:
    """The ``nearest`` row a setting is compared with in the PNG (itself for a ``nearest`` row)."""
    setting = next(s for s in SETTINGS if s[0] == label)
    return next(s[0] for s in SETTINGS if s[1:5] == setting[1:5] and s[5] == "nearest")


def roundtrip(tok: FastTokenizer, corpus: Corpus, native: bool) -> tuple[np.ndarray, float, float]:
    """Held-out token lengths, round-trip MSE over the native dims, encode seconds (a native row at its
    widths). The MSE is the real ``decode(encode(x))`` error of this tokenizer, so a ``token_aware`` row's
    is its own (larger than the shared quantization error at the same scale)."""
    held, widths = corpus.held, corpus.held_widths if native else None
    start = time.perf_counter()
    encoded = tok.encode_padded(held, action_dims=widths)
    seconds = time.perf_counter() - start
    decoded = tok.decode(encoded, action_dim=widths)  # native: (N, T, widest), 0 beyond
    if decoded.invalid_rows:  # NaN rows would poison the MSE: a codec bug, never averaged away
        raise RuntimeError(
            f"{len(decoded.invalid_rows)} held-out rows do not decode: {decoded.invalid_rows[:5]}"
        )
    full = np.zeros_like(held)
    full[:, :, : decoded.actions.shape[2]] = decoded.actions
    mse = float(np.square(full - held, dtype=np.float64)[corpus.mask].mean())
    return encoded.lengths, mse, seconds


def fit_point(corpus: Corpus, setting: tuple, scale: float, vocab: int) -> Point:
    """Fit ``setting`` at ``scale`` on the fit chunks and measure it on the held-out chunks."""
    label, pipeline, order, cap, layout, rounding = setting
    native = layout == "native"
    start = time.perf_counter()
    tok = FastTokenizer.fit(
        corpus.fit,
        vocab_size=vocab,
        scale=scale,
        pipeline=pipeline,
        order=order,
        max_token_length=corpus.fit.shape[1] if cap == "T" else cap,
        layout=layout,
        action_dims=corpus.fit_widths if native else None,
        rounding=rounding,
    )
    seconds = time.perf_counter() - start
    n, mse, encode = roundtrip(tok, corpus, native)
    point = Point(
        scale,
        mse,
        float(n.mean()),
        float(np.percentile(n, 99)),
        int(n.max()),
        seconds,
        1000 * encode / len(n),
    )
    print(
        f"  {label:<{LABEL}} scale {scale:>6g}: mse {mse:.3g} mean {point.mean:.1f} p99 {point.p99:.0f} "
        f"max {point.max} (fit {seconds:.1f} s, encode {point.encode_ms:.2f} ms/chunk)",
        flush=True,
    )
    return point


def bracket(corpus: Corpus, setting: tuple, points: list[Point], ref: list[Point], vocab: int) -> list[Point]:
    """Extra fits (2x the largest scale, or half the smallest, up to 3 each) until ``points``' MSE range
    holds every reference MSE: ``np.interp`` clamps outside it, which would credit a ``token_aware`` row
    (larger error at a scale) with its shortest sequences at an error it does not reach."""
    extra: list[Point] = []
    low, high = min(r.mse for r in ref), max(r.mse for r in ref)
    scale = max(p.scale for p in points)
    while min(p.mse for p in points + extra) > low * (1 + BRACKET_TOLERANCE) and len(extra) < 3:
        scale *= 2
        extra.append(fit_point(corpus, setting, scale, vocab))
    scale, below = min(p.scale for p in points), len(extra)
    while max(p.mse for p in points + extra) < high / (1 + BRACKET_TOLERANCE) and len(extra) < below + 3:
        scale /= 2
        extra.append(fit_point(corpus, setting, scale, vocab))
    return extra


def measure(
    corpus: Corpus, scales: list[float], vocab: int, labels: tuple[str, ...]
) -> tuple[dict[str, list[Point]], dict[str, list[Point]]]:
    """Per setting: its points at ``scales``, and the extra points that bracket the reference's MSE."""
    rows: dict[str, list[Point]] = {}
    extra: dict[str, list[Point]] = {}
    for setting in SETTINGS:
        label = setting[0]
        if label not in labels:
            continue
        rows[label] = [fit_point(corpus, setting, scale, vocab) for scale in scales]
        reference = rows[SETTINGS[0][0]]
        extra[label] = bracket(corpus, setting, rows[label], reference, vocab)
    return rows, extra


def matched(ref: list[Point], row: list[Point], column: str) -> list[float]:
    """``row``'s tokens at each reference MSE (log-log interpolation) divided by the reference's."""
    mse = np.log([r.mse for r in row])
    tokens = np.log([getattr(r, column) for r in row])
    order = np.argsort(mse)
    out = []
    for r in ref:
        at = float(np.exp(np.interp(np.log(r.mse), mse[order], tokens[order])))
        out.append(at / getattr(r, column))
    return out


def report(rows: dict[str, list[Point]], extra: dict[str, list[Point]], scales: list[float]) -> str:
    """The per-scale table, the extra bracketing fits and the matched-MSE ratios, as printed text."""
    ref = rows[SETTINGS[0][0]]
    lines = ["", "held-out tokens (mean / p99 / max) and round-trip MSE per scale:"]
    lines.append(f"{'setting':<{LABEL}}" + "".join(f"{'scale ' + format(s, 'g'):>26}" for s in scales))
    for label, values in rows.items():
        cells = "".join(f" {f'{p.mean:.1f} / {p.p99:.0f} / {p.max} ({p.mse:.2g})':>25}" for p in values)
        lines.append(f"{label:<{LABEL}}{cells}")
    added = {label: points for label, points in extra.items() if points}
    if added:
        lines += [
            "",
            "extra fits so that each row's MSE range holds the reference's (used for interpolation):",
        ]
        for label, points in added.items():
            cells = ", ".join(
                f"scale {p.scale:g}: {p.mean:.1f} / {p.p99:.0f} / {p.max} ({p.mse:.2g})" for p in points
            )
            lines.append(f"{label:<{LABEL}} {cells}")
    lines += ["", "at matched MSE, tokens relative to the reference FAST (mean, p99; < 1 is shorter):"]
    for label, values in rows.items():
        mean = matched(ref, values + extra.get(label, []), "mean")
        p99 = matched(ref, values + extra.get(label, []), "p99")
        cells = "".join(f"{f'{a:.2f}, {b:.2f}':>26}" for a, b in zip(mean, p99, strict=True))
        lines.append(
            f"{label:<{LABEL}}{cells}   avg: {1 - np.mean(mean):+.0%} mean, {1 - np.mean(p99):+.0%} p99 fewer"
        )
    return "\n".join(lines) + "\n"


def plot(rows: dict[str, list[Point]], extra: dict[str, list[Point]], path: Path) -> Path | None:
    """The tokens-vs-MSE curves (mean, p99, max); a token_aware row dashed in its nearest twin's colour."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG", file=sys.stderr)
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), sharex=True)
    colours: dict[str, str] = {}
    for label, values in rows.items():
        points = sorted(values + extra[label], key=lambda p: p.mse)
        colour = colours.setdefault(twin(label), f"C{len(colours)}")
        style = "-" if twin(label) == label else "--"
        for ax, column in zip(axes, ("mean", "p99", "max"), strict=True):
            ys = [getattr(p, column) for p in points]
            ax.plot([p.mse for p in points], ys, marker="o", ls=style, color=colour, label=label)
            ax.set(xscale="log", xlabel="round-trip MSE (normalized units)", ylabel=f"{column} tokens")
    axes[0].legend(fontsize=7)
    fig.suptitle("held-out tokens vs round-trip error (one corpus, every setting; dashed: token_aware)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny corpus and two scales (smoke test)")
    parser.add_argument("--datasets", type=int, default=13)
    parser.add_argument("--episodes", type=int, default=12, help="episodes per dataset")
    parser.add_argument("--fit-chunks", type=int, default=6000)
    parser.add_argument("--chunk-size", type=int, default=30)
    parser.add_argument("--max-action-dim", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--scales", type=float, nargs="+", default=[2.5, 5.0, 10.0, 20.0, 40.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=Path("bench_tokens.png"))
    args = parser.parse_args(argv)
    labels = tuple(s[0] for s in SETTINGS)
    if args.quick:
        labels = QUICK
        args.datasets, args.episodes, args.fit_chunks, args.scales = 4, 4, 400, [5.0, 20.0]
        args.vocab_size = 1024
    logging.getLogger("fasttok_plugin").setLevel(logging.ERROR)  # clamp notes of held-out outliers
    settings = FitSettings(
        chunk_size=args.chunk_size,
        max_action_dim=args.max_action_dim,
        vocab_size=args.vocab_size,
        total_chunks=int(args.fit_chunks * 1.6),
        max_fit_chunks=args.fit_chunks,
        heldout_fraction=0.2,
        max_heldout_chunks_per_head=1000,
        seed=args.seed,
        layout="native",  # the plan's batches carry each chunk's native width (padded rows ignore it)
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        mixture = write_corpus(Path(tmp), args.datasets, args.episodes, args.seed)
        corpus = sample(mixture, settings)
        fit, held = corpus.fit, corpus.held
        print(
            f"{args.datasets} datasets, {fit.shape[0]} fit / {held.shape[0]} held-out chunks of "
            f"{fit.shape[1]} x {fit.shape[2]} (native widths {sorted(set(corpus.fit_widths.tolist()))}), "
            f"vocab {args.vocab_size} "
            f"(written and sampled in {time.perf_counter() - start:.1f} s)",
            flush=True,
        )
        rows, extra = measure(corpus, args.scales, args.vocab_size, labels)
    sys.stdout.write(report(rows, extra, args.scales))
    path = plot(rows, extra, args.png)
    if path is not None:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
