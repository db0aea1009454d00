"""Decode predicted FAST token ids to raw actions from a checkpoint and the tokenizer folder, with no dataset.

The checkpoint of `examples/train.py` carries the model's layer sizes and the heads' decoder state
(`ActionDecoder.state`: head keys, native widths, normalization stats and settings), so neither the mixture
nor its datasets are read::

    python examples/predict.py --checkpoint runs/demo/lightning/checkpoints/last.ckpt \\
        --tokenizer runs/demo/tokenizer --ids predicted.npz --out actions.npz

``predicted.npz`` holds ``ids`` (N, L) int (FAST ids, not model ids), ``lengths`` (N,) and ``heads`` (N,)
(head indices or head keys), and ``state`` (N, state_dim) when the policy predicts relative actions (the
state at each chunk's first frame, added back). ``actions.npz`` receives ``actions`` (N, T, D) raw (NaN
rows did not decode), ``valid`` (N,), ``action_dims`` (N,) and ``head_index`` (N,).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/train.py sits next to this file


def load_decoder(checkpoint: Path, tokenizer_dir: Path) -> tuple[Any, Any]:
    """The trained ``TinyActionPolicy`` (CPU, eval mode) and the `ActionDecoder` its checkpoint describes."""
    from train import TinyActionPolicy

    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.decode import ActionDecoder

    model = TinyActionPolicy.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    if model.action_decoder_state is None:
        raise SystemExit(f"error: {checkpoint} holds no decoder state; train it with examples/train.py")
    tokenizer = FastTokenizer.load(tokenizer_dir)
    model.action_tokenizer = tokenizer
    return model, ActionDecoder.from_state(tokenizer, model.action_decoder_state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True, help="the FastTokenizerCallback folder")
    parser.add_argument("--ids", type=Path, required=True, help=".npz with ids, lengths and heads")
    parser.add_argument("--out", type=Path, required=True, help=".npz receiving the raw actions")
    args = parser.parse_args(argv)
    for path in (args.checkpoint, args.tokenizer, args.ids):
        if not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
    _, decoder = load_decoder(args.checkpoint, args.tokenizer)
    with np.load(args.ids, allow_pickle=False) as saved:
        heads = [h.item() if isinstance(h, np.generic) else h for h in saved["heads"]]
        state = saved["state"] if "state" in saved.files else None
        try:
            out = decoder.decode(saved["ids"], heads, lengths=saved["lengths"], state=state)
        except ValueError as exc:  # a user mistake (e.g. no state for relative actions): one line, exit 2
            print(f"error: {exc}", file=sys.stderr)
            return 2
    np.savez(
        args.out, actions=out.actions, valid=out.valid, action_dims=out.action_dims, head_index=out.head_index
    )
    print(f"decoded {int(out.valid.sum())} of {len(out.valid)} chunk(s) to raw actions -> {args.out}")
    if out.invalid_rows:
        print(f"rows that did not decode (NaN): {list(out.invalid_rows)[:20]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
