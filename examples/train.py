"""Train a tiny token policy on FAST action tokens, with the tokenizer fit (or loaded) by the callback.

The model's loss really uses the tokens: raw padded chunks -> the datamodule's `Normalize` (attached by the
callback) -> `FastTokenizer.encode_padded` -> token embedding (+ a per-head embedding) -> a small causal
transformer -> next-token cross-entropy.

Run it through LightningCLI with the shipped config (paths are relative to the working directory)::

    python examples/make_example_mixture.py --out runs/demo/data
    python examples/train.py fit --config examples/config.yaml --trainer.max_steps 20

`examples/demo.py` drives the same model from Python.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LightningCLI
from torch import Tensor, nn

PAD_ID = 0  # padding of the token sequence (ignored by the loss)
BOS_ID = 1  # start of the action sequence
TOKEN_OFFSET = 2  # FAST token id t is model id t + TOKEN_OFFSET


class TinyActionPolicy(pl.LightningModule):
    """A small causal transformer that models the FAST token sequence of each action chunk.

    The layers are built in ``setup()``, after `FastTokenizerCallback` has attached ``action_tokenizer``,
    because the embedding size follows the tokenizer's vocabulary.

    Args:
        d_model: Width of the transformer.
        num_layers: Transformer layers.
        num_heads: Attention heads.
        max_action_tokens: Token budget per chunk (longer sequences are truncated and counted).
        learning_rate: AdamW learning rate.
    """

    def __init__(
        self,
        d_model: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        max_action_tokens: int = 128,
        learning_rate: float = 1e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.action_tokenizer: Any = None  # set by FastTokenizerCallback
        self.normalize: nn.Module | None = (
            None  # set by FastTokenizerCallback(normalize_attribute="normalize")
        )
        self.token_embedding: nn.Embedding | None = None
        self.head_embedding: nn.Embedding | None = None
        self.position_embedding: nn.Embedding | None = None
        self.transformer: nn.TransformerEncoder | None = None
        self.lm_head: nn.Linear | None = None

    def setup(self, stage: str) -> None:
        if self.action_tokenizer is None or self.normalize is None:
            raise RuntimeError(
                "TinyActionPolicy needs FastTokenizerCallback(..., normalize_attribute='normalize') in the "
                "Trainer's callbacks"
            )
        if self.token_embedding is not None:
            return
        hp = self.hparams
        vocab = int(self.action_tokenizer.vocab_size) + TOKEN_OFFSET
        num_heads_norm = int(self.normalize.num_heads)
        self.token_embedding = nn.Embedding(vocab, hp.d_model, padding_idx=PAD_ID)
        self.head_embedding = nn.Embedding(num_heads_norm, hp.d_model)
        self.position_embedding = nn.Embedding(hp.max_action_tokens + 1, hp.d_model)
        layer = nn.TransformerEncoderLayer(
            hp.d_model, hp.num_heads, dim_feedforward=2 * hp.d_model, dropout=0.0, batch_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, hp.num_layers, enable_nested_tensor=False)
        self.lm_head = nn.Linear(hp.d_model, vocab)

    def tokenize(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, int]:
        """Normalize the raw chunks with the heads' stats and encode them to padded FAST ids."""
        assert self.normalize is not None
        normalized = self.normalize(batch["actions"], batch["head_index"])
        encoded = self.action_tokenizer.encode_padded(
            normalized.detach().cpu().numpy(), max_length=self.hparams.max_action_tokens, pad_id=0
        )
        ids = torch.as_tensor(encoded.ids, dtype=torch.long, device=self.device) + TOKEN_OFFSET
        mask = torch.as_tensor(encoded.attention_mask, dtype=torch.bool, device=self.device)
        ids = ids.masked_fill(~mask, PAD_ID)
        return ids, mask, int(encoded.truncated_rows)

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Next-token cross-entropy over the chunk's FAST tokens, conditioned on its norm head."""
        assert self.token_embedding is not None
        assert self.transformer is not None
        assert self.lm_head is not None
        assert self.head_embedding is not None
        assert self.position_embedding is not None
        ids, mask, truncated = self.tokenize(batch)
        batch_size, length = ids.shape
        bos = torch.full((batch_size, 1), BOS_ID, dtype=torch.long, device=self.device)
        inputs = torch.cat([bos, ids[:, :-1]], dim=1)
        positions = torch.arange(length, device=self.device)
        x = (
            self.token_embedding(inputs)
            + self.position_embedding(positions)[None]
            + self.head_embedding(batch["head_index"])[:, None]
        )
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=self.device)
        hidden = self.transformer(x, mask=causal, is_causal=True)
        logits = self.lm_head(hidden)
        loss = nn.functional.cross_entropy(logits[mask], ids[mask])
        stats = {
            "tokens_per_chunk": float(mask.sum(dim=1).float().mean()),
            "truncated_rate": truncated / batch_size,
        }
        return loss, stats

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, stats = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in stats.items()})
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, _ = self.loss(batch)
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/perplexity", math.exp(min(float(loss), 50.0)))

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, _ = self.loss(batch)
        self.log("test/loss", loss)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        ids, mask, _ = self.tokenize(batch)
        return {"token_ids": ids, "lengths": mask.sum(dim=1)}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate)


def main(args: list[str] | None = None) -> None:
    """LightningCLI entry point: ``python examples/train.py fit --config examples/config.yaml``."""
    from fasttok_plugin.lightning import MixtureDataModule

    LightningCLI(
        TinyActionPolicy,
        MixtureDataModule,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
