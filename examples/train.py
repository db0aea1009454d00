"""Train a tiny token policy on FAST action tokens, with the tokenizer fit (or loaded) by the callback.

The model's loss really uses the tokens: raw padded chunks -> the datamodule's `Normalize` (attached by the
callback) -> `FastTokenizer.encode_padded` -> token embedding (+ a per-head embedding) -> a small causal
transformer -> next-token cross-entropy. With ``MixtureDataModule(tokenize=True)`` (the shipped config) the
first two steps run in the DataLoader workers and the batch brings ``action_tokens``; without it the model
tokenizes in its step. Both paths are device- and precision-safe: token ids are made on CPU in float32 and
moved to the module's device (on CUDA, ``pin_memory: true`` overlaps that copy), and under
``precision="bf16-true"`` the worker path keeps the float32 ids (Lightning casts the batch's float tensors
to bf16 before the step, so in-step tokenization would see rounded raw actions).

Checkpoints carry the layer sizes and the heads' decoder state (`ActionDecoder.state`), so
``TinyActionPolicy.load_from_checkpoint(path)`` needs no datamodule; see `examples/predict.py`.

Run it through LightningCLI with the shipped config (paths are relative to the working directory)::

    python examples/make_example_mixture.py --out runs/demo/data
    python examples/train.py fit --config examples/config.yaml --trainer.max_steps 20

`examples/demo.py` drives the same model from Python.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LightningCLI
from torch import Tensor, nn

PAD_ID = 0  # padding of the token sequence (ignored by the loss)
BOS_ID = 1  # start of the action sequence
TOKEN_OFFSET = 2  # FAST token id t is model id t + TOKEN_OFFSET
IGNORE_INDEX = -100  # targets past a row's end


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
        self.action_decoder_state: dict[str, Any] | None = None  # ActionDecoder.state() of the heads
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
        datamodule = self.trainer.datamodule
        heads = getattr(datamodule, "norm_heads", None)
        if heads is not None and self.action_decoder_state is None:
            from fasttok_plugin.decode import ActionDecoder

            n = self.normalize
            # The entries' transforms (column selection, relative actions), so predict.py can undo them.
            transforms = getattr(getattr(datamodule, "chunk_sampler", None), "transforms", None)
            decoder = ActionDecoder.from_heads(
                self.action_tokenizer,
                heads,
                mode=n.mode.value,
                zero_range=n.zero_range,
                eps=n.eps,
                transforms=transforms,
            )
            self.action_decoder_state = decoder.state()
        if self.token_embedding is None:
            self._build(int(self.action_tokenizer.vocab_size) + TOKEN_OFFSET, int(self.normalize.num_heads))

    def _build(self, vocab: int, num_heads_norm: int) -> None:
        hp = self.hparams
        self.token_embedding = nn.Embedding(vocab, hp.d_model, padding_idx=PAD_ID)
        self.head_embedding = nn.Embedding(num_heads_norm, hp.d_model)
        self.position_embedding = nn.Embedding(hp.max_action_tokens + 1, hp.d_model)
        layer = nn.TransformerEncoderLayer(
            hp.d_model, hp.num_heads, dim_feedforward=2 * hp.d_model, dropout=0.0, batch_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, hp.num_layers, enable_nested_tensor=False)
        self.lm_head = nn.Linear(hp.d_model, vocab)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        assert self.token_embedding is not None
        assert self.head_embedding is not None
        checkpoint["fasttok"] = {
            "vocab_size": self.token_embedding.num_embeddings,
            "num_norm_heads": self.head_embedding.num_embeddings,
            "decoder": self.action_decoder_state,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Runs before the weights load: build the layers, so load_from_checkpoint needs no datamodule.
        saved = checkpoint.get("fasttok")
        if saved is None:
            return
        if self.token_embedding is None:
            self._build(int(saved["vocab_size"]), int(saved["num_norm_heads"]))
        self.action_decoder_state = saved["decoder"]

    def tokenize(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Padded model ids (FAST id + TOKEN_OFFSET, PAD_ID after the end), their mask and the truncations.

        Uses the worker-made ``action_tokens`` when the batch has them, else tokenizes here.
        """
        if "action_tokens" in batch:
            ids, mask = batch["action_tokens"], batch["action_token_mask"].bool()
            truncated = batch["action_tokens_truncated"]  # a tensor: no device sync per step
            if ids.shape[1] > self.hparams.max_action_tokens:
                raise ValueError(
                    f"the batch brings {ids.shape[1]} token positions but the model has "
                    f"max_action_tokens={self.hparams.max_action_tokens}: give the callback (or the "
                    "datamodule) the same max_action_tokens"
                )
        else:
            assert self.normalize is not None
            normalized = self.normalize(batch["actions"], batch["head_index"])
            # A tensor on any device or dtype: the codec copies it to CPU float32 itself.
            encoded = self.action_tokenizer.encode_padded(
                normalized, max_length=self.hparams.max_action_tokens, pad_id=0
            )
            ids, mask = torch.from_numpy(encoded.ids), torch.from_numpy(encoded.attention_mask)
            truncated = torch.tensor(encoded.truncated_rows)
        ids = ids.to(self.device, non_blocking=True) + TOKEN_OFFSET
        mask = mask.to(self.device, non_blocking=True)
        return ids.masked_fill(~mask, PAD_ID), mask, truncated.to(self.device)

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
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
        # ignore_index instead of logits[mask]: boolean indexing is data-dependent (a device sync per step).
        targets = ids.masked_fill(~mask, IGNORE_INDEX)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        stats = {
            "tokens_per_chunk": mask.sum(dim=1).float().mean(),
            "truncated_rate": truncated.float() / batch_size,
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
        self.log("val/perplexity", loss.detach().float().clamp_max(50.0).exp())

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
