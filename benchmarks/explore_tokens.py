"""Exploration (issue 13): which change on top of ``native`` + ``dc_dims`` / ``dims`` saves more tokens?

Usage::

    python benchmarks/explore_tokens.py                  # bench_tokens.py's default corpus, scales 5 10 20
    python benchmarks/explore_tokens.py --quick          # smoke test (seconds)

Reuses `benchmarks/bench_tokens.py`'s corpus (the same generated 13-dataset LeRobot mixture, sampled and
normalized by `FitPlan`) and its matched-MSE report. The reference FAST and the shipped ``native, dc_dims``
/ ``native, dims`` rows are fit with `FastTokenizer`; the candidates are fit here on the same quantized
codes (`fasttok_plugin.codec.quantize`, each chunk at its native width, the global ``min_token`` offset,
the char alphabet) and differ only in what the brief asks to try:

- the model: BPE (``min_frequency`` 2 = ours, or higher) or Unigram (``max_piece_length`` given);
- trailing-zero trimming: the sequence's trailing run of zero coefficients is dropped and one end marker
  (one extra alphabet character) appended, so a truncated sequence stays detectable;
- orders that keep coarse motion first: ``k2_dims`` (coefficients 0 and 1 of every dim, then each dim's
  other ``T-2``), ``dc_energy`` (every dim's DC, then dims by descending fit-corpus energy of their other
  coefficients, per width; a data-dependent permutation a folder would have to store).

Every candidate is lossless on top of the same quantization, so its round-trip MSE is the shipped
``native, dims`` row's at the same scale (held-out codes outside the fitted range are clamped as
`FastTokenizer` does; that is the only error). A ``BPE, dims`` candidate reproduces ``native, dims`` and
checks this harness.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, trainers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tokens as bench  # the benchmark's corpus, measure and report

from fasttok_plugin.codec.alphabet import code_strings
from fasttok_plugin.codec.quantize import quantize
from fasttok_plugin.fit import FitSettings

BASELINES = ("reference FAST (time)", "native, dc_dims", "native, dims")
#: (label, order, model, min_frequency, trim)
CANDIDATES: tuple[tuple[str, str, str, int, bool], ...] = (
    ("BPE, dims (check)", "dims", "bpe", 2, False),
    ("BPE, dc_dims, mf 4", "dc_dims", "bpe", 4, False),
    ("BPE, dc_dims, mf 8", "dc_dims", "bpe", 8, False),
    ("BPE, dims, mf 4", "dims", "bpe", 4, False),
    ("BPE, dims, mf 8", "dims", "bpe", 8, False),
    ("BPE, dc_dims, mf 32", "dc_dims", "bpe", 32, False),
    ("BPE, dc_dims, mf 128", "dc_dims", "bpe", 128, False),
    ("BPE, dc_dims, trim", "dc_dims", "bpe", 2, True),
    ("BPE, dims, trim", "dims", "bpe", 2, True),
    ("BPE, k2_dims", "k2_dims", "bpe", 2, False),
    ("BPE, dc_energy", "dc_energy", "bpe", 2, False),
    ("BPE, dc_energy, trim", "dc_energy", "bpe", 2, True),
    ("Unigram, dc_dims", "dc_dims", "unigram", 0, False),
    ("Unigram, dims", "dims", "unigram", 0, False),
)
#: The candidates of ``--quick`` (Unigram is left out: its fit takes 10+ s even on the quick corpus).
QUICK = ("BPE, dims (check)", "BPE, dc_dims, mf 4", "BPE, dims, trim", "BPE, dc_energy", "BPE, k2_dims")


def permutation(order: str, t: int, w: int, energy: np.ndarray | None = None) -> np.ndarray:
    """Indices into the time-major ``T*w`` vector, in ``order`` (``energy``: per dim, for ``dc_energy``)."""
    grid = np.arange(t * w).reshape(t, w)
    if order == "dims":
        return grid.T.reshape(-1)
    if order == "dc_dims":
        return np.concatenate([grid[0], grid[1:].T.reshape(-1)])
    if order == "k2_dims":
        return np.concatenate([grid[:2].reshape(-1), grid[2:].T.reshape(-1)])
    if order == "dc_energy":
        assert energy is not None
        return np.concatenate([grid[0], grid[1:, np.argsort(-energy, kind="stable")].T.reshape(-1)])
    raise ValueError(order)


def codes_by_width(
    chunks: np.ndarray, widths: np.ndarray, scale: float
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{w: (rows, (n, T*w) time-major quantized codes)}``, each chunk at its native width."""
    out = {}
    for w in np.unique(widths):
        rows = np.flatnonzero(widths == w)
        out[int(w)] = (rows, quantize(chunks[rows, :, :w], scale))
    return out


def strings(codes: np.ndarray, lo: int, hi: int, trim: bool) -> list[str]:
    """Alphabet strings (code ``v - lo``, clamped to the fitted range); ``trim``: no trailing zeros + end."""
    shifted = np.clip(codes - lo, 0, hi - lo)
    texts = code_strings(shifted)
    if not trim:
        return texts
    zero, end = chr(-lo), chr(hi - lo + 1)
    return [s.rstrip(zero) + end for s in texts]


def train(texts: list[str], model: str, alphabet: int, vocab: int, min_frequency: int) -> Tokenizer:
    """A char-pipeline tokenizer (no pre-tokenizer, Fuse decoder) with the given model."""
    initial = [chr(i) for i in range(alphabet)]
    if model == "bpe":
        tokenizer = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=vocab,
            min_frequency=min_frequency,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=initial,
            max_token_length=10000,
        )
    else:
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=initial,
            unk_token=None,
            max_piece_length=64,  # the default 16 would forbid the long zero runs BPE merges
        )
    tokenizer.decoder = decoders.Fuse()
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tokenizer


def candidate_row(
    corpus: bench.Corpus, spec: tuple[str, str, str, int, bool], scale: float, vocab: int
) -> tuple[np.ndarray, float]:
    """Held-out token lengths of one candidate at one scale, and its fit seconds."""
    _, order, model, min_frequency, trim = spec
    start = time.perf_counter()
    t = corpus.fit.shape[1]
    fit = codes_by_width(corpus.fit, corpus.fit_widths, scale)
    lo = min(int(c.min()) for _, c in fit.values())
    hi = max(int(c.max()) for _, c in fit.values())
    perms: dict[int, Callable[[np.ndarray], np.ndarray]] = {}
    texts: list[str] = []
    for w, (_, codes) in fit.items():
        energy = np.square(codes.reshape(-1, t, w)[:, 1:, :].astype(np.float64)).mean(axis=(0, 1))
        perm = permutation(order, t, w, energy)
        perms[w] = perm
        texts += strings(codes[:, perm], lo, hi, trim)
    tokenizer = train(texts, model, hi - lo + 1 + trim, vocab, min_frequency)
    seconds = time.perf_counter() - start
    lengths = np.zeros(corpus.held.shape[0], dtype=np.int64)
    for w, (rows, codes) in codes_by_width(corpus.held, corpus.held_widths, scale).items():
        encoded = tokenizer.encode_batch(strings(codes[:, perms[w]], lo, hi, trim))
        lengths[rows] = [len(e.ids) for e in encoded]
    return lengths, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny corpus, two scales (smoke test)")
    parser.add_argument("--scales", type=float, nargs="+", default=[5.0, 10.0, 20.0])
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--fit-chunks", type=int, default=6000)
    parser.add_argument("--datasets", type=int, default=13)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--only", nargs="*", help="candidate labels to run (default: all)")
    args = parser.parse_args(argv)
    labels = tuple(args.only) if args.only else tuple(c[0] for c in CANDIDATES)
    if args.quick:
        labels, args.scales, args.vocab_size = QUICK, [5.0, 20.0], 1024
        args.datasets, args.episodes, args.fit_chunks = 4, 4, 400
    logging.getLogger("fasttok_plugin").setLevel(logging.ERROR)
    settings = FitSettings(
        chunk_size=30,
        max_action_dim=32,
        vocab_size=args.vocab_size,
        total_chunks=int(args.fit_chunks * 1.6),
        max_fit_chunks=args.fit_chunks,
        heldout_fraction=0.2,
        max_heldout_chunks_per_head=1000,
        seed=0,
        layout="native",
    )
    with tempfile.TemporaryDirectory() as tmp:
        corpus = bench.sample(bench.write_corpus(Path(tmp), args.datasets, args.episodes, 0), settings)
    print(f"{corpus.fit.shape[0]} fit / {corpus.held.shape[0]} held-out chunks", flush=True)
    rows, extra = bench.measure(corpus, args.scales, args.vocab_size, BASELINES)
    mse = [p.mse for p in rows["native, dims"]]  # lossless candidates share the quantization's error
    for spec in CANDIDATES:
        if spec[0] not in labels:
            continue
        rows[spec[0]] = []
        for scale, error in zip(args.scales, mse, strict=True):
            n, seconds = candidate_row(corpus, spec, scale, args.vocab_size)
            point = (float(n.mean()), float(np.percentile(n, 99)), int(n.max()), seconds, float("nan"))
            rows[spec[0]].append(bench.Point(scale, error, *point))
            print(
                f"  {spec[0]:<26} scale {scale:>6g}: mean {n.mean():.1f} p99 {np.percentile(n, 99):.0f} "
                f"max {n.max()} ({seconds:.1f} s)",
                flush=True,
            )
    sys.stdout.write(bench.report(rows, extra, args.scales))
    return 0


if __name__ == "__main__":
    sys.exit(main())
