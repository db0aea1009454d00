"""FAST action codec: DCT + quantization + BPE, batch-first and compatible with the reference files.

Reference (read for this module, 2026-11): Physical Intelligence's ``UniversalActionProcessor`` in
``processing_action_tokenizer.py`` of the Hugging Face repo ``physical-intelligence/fast``
(https://huggingface.co/physical-intelligence/fast/blob/main/processing_action_tokenizer.py; the same file
is vendored in openpi forks and loaded by LeRobot ``pi0_fast`` / OpenTau through
``AutoProcessor.from_pretrained(..., trust_remote_code=True)``). What it does, step by step:

- ``fit``: per chunk ``dct(a, axis=0, norm="ortho").flatten()`` (row-major: time-major coefficients),
  ``min_token``/``max_token`` of ``np.around(coeff * scale)`` over the corpus, asserts
  ``max - min <= vocab_size``; a generator yields ``"".join(map(chr, np.around(c * scale) - min_token))``
  per chunk into ``ByteLevelBPETokenizer()._tokenizer.train_from_iterator`` with
  ``BpeTrainer(vocab_size, min_frequency=2, special_tokens=[], initial_alphabet=[chr(0)..chr(max-min)],
  max_token_length=10000)``. It calls the *inner* ``Tokenizer.train_from_iterator`` on purpose, so the
  custom alphabet is kept (``ByteLevelBPETokenizer.train_from_iterator`` and transformers'
  ``PreTrainedTokenizerFast.train_new_from_iterator`` would replace it with ``ByteLevel.alphabet()``
  for a ByteLevel pre-tokenizer; the reference uses neither). The result is wrapped in
  ``PreTrainedTokenizerFast(tokenizer_object=..., clean_up_tokenization_spaces=False)``, which does not
  change ``tokenizer.json`` (checked with transformers 5.24: ``save_pretrained`` writes exactly
  ``Tokenizer.save(path)``).
- ``__call__``: batched ``dct(x, axis=1, norm="ortho")``, ``np.around(. * scale)``, then per chunk
  ``chr`` of ``max(v - min_token, 0)`` (no upper clamp) and one tokenizer call per chunk.
- ``decode``: per row ``tokenizer.decode(ids)``, ``ord`` of every character ``+ min_token``, reshape
  ``(T, D)``, ``idct(. / scale, axis=0, norm="ortho")``; on any error it prints and returns zeros.
- Files: ``processor_config.json`` (``scale``, ``vocab_size``, ``min_token``, ``time_horizon``,
  ``action_dim``, ``processor_class``, ``auto_map``) and the tokenizer files, flat beside it with
  transformers 4.x (``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``) and under
  ``bpe_tokenizer/`` with transformers 5.x (``tokenizer.json``, ``tokenizer_config.json``).

The ``"reference"`` pipeline rebuilds exactly that tokenizer with the ``tokenizers`` library alone
(``ByteLevelBPETokenizer`` is part of ``tokenizers``), so on the same chunks it writes a byte-identical
``tokenizer.json``. The default ``"char"`` pipeline fixes the reference's defects: no byte-level
pre-tokenizer (merges may span the whole chunk, every value of the fitted range is one alphabet character),
and a ``Fuse`` decoder.

Modules: :mod:`~fasttok_plugin.codec.tokenizer` (:class:`FastTokenizer`), ``quantize`` (DCT, time-major
flatten, rounding), ``alphabet`` (codes as characters, representable codes), ``pipelines`` (``"char"`` /
``"reference"``), ``batches`` (:class:`EncodedBatch`, :class:`DecodedBatch`), ``files`` (the folder on
disk); private helpers: ``_arrays`` (input checks), ``_fit`` (the streaming fit), ``_decode`` (ids to
code points).
"""

from fasttok_plugin.codec._fit import MAX_TRAINER_INT, MAX_VOCAB_SIZE
from fasttok_plugin.codec.batches import DecodedBatch, EncodedBatch
from fasttok_plugin.codec.pipelines import PIPELINES
from fasttok_plugin.codec.tokenizer import FastTokenizer
from fasttok_plugin.errors import CodecError, TokenizerFormatError

__all__ = [
    "MAX_TRAINER_INT",
    "MAX_VOCAB_SIZE",
    "PIPELINES",
    "CodecError",
    "DecodedBatch",
    "EncodedBatch",
    "FastTokenizer",
    "TokenizerFormatError",
]
