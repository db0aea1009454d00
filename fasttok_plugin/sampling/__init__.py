"""Weighted chunk sampler over LeRobot parquet: the chunks a fit (and a policy) sees.

`ChunkSampler` draws ``chunk_size``-step action chunks from every entry of a resolved mixture:

* **Budgets**: the number of chunks per entry is proportional to the mixture weights (largest-remainder
  rounding, so budgets sum exactly to the total). Entries the norm heads skipped get no budget.
* **Starts**: uniform over the *valid* start frames of the selected episodes, so an episode's share is
  its number of valid starts. A start frame is valid when the chunk's last step, ``(chunk_size - 1) /
  freq`` after it, lies inside the episode: one rule, shared with the preflight (`starts`). Starts are
  drawn without replacement; only a budget larger than the number of valid starts repeats starts (each
  start then occurs ``floor`` or ``ceil`` times, and the report counts the repeats).
* **Values**: step ``k`` is at ``t0 + k / freq`` (``freq`` = the mixture's ``action_freq``, else the
  dataset's native fps), linearly interpolated on ``timestamp`` and clamped inside the episode, then
  zero-padded to ``max_action_dim``. Chunks holding NaN/Inf are skipped and counted, never zero-filled.
* **Determinism**: each entry gets its own generator from ``SeedSequence([seed, entry index])`` and
  results are assembled in entry order, so the output depends on the seed only, never on ``workers``.
* **Parallel and bounded**: entries are split into parts of at most `PART_CHUNKS` chunks and run in a
  process pool (``workers > 0``; ``forkserver``/``spawn`` workers, never ``fork``) with a bounded number
  of parts in flight; batches stream out. In a daemonic process (a DataLoader worker) it samples
  in-process, since those may not have children.

Modules: ``sampler`` (`ChunkSampler`), ``budgets``, ``starts`` (the valid-start rule), ``batch``
(`ChunkBatch`), ``report`` (`DatasetSampleReport`), and the private ``_part`` (one worker task),
``_resample`` (interpolation) and ``_pool`` (the worker pool, `PART_CHUNKS`). Frames are read by
`fasttok_plugin.lerobot.read_frames`.
"""

from __future__ import annotations

from fasttok_plugin._lazy import lazy_exports

# Lazy, so the preflight's import of `starts` does not start up the worker pool's multiprocessing.
_EXPORTS: dict[str, str] = {
    "FROM_CONFIG": "fasttok_plugin.sampling.sampler",
    "PART_CHUNKS": "fasttok_plugin.sampling._pool",
    "ChunkBatch": "fasttok_plugin.sampling.batch",
    "ChunkSampler": "fasttok_plugin.sampling.sampler",
    "DatasetSampleReport": "fasttok_plugin.sampling.report",
    "SamplingError": "fasttok_plugin.errors",
    "largest_remainder": "fasttok_plugin.sampling.budgets",
    "longest_chunk": "fasttok_plugin.sampling.starts",
    "peak_rss_mb": "fasttok_plugin.sampling._pool",
    "sample_warnings": "fasttok_plugin.sampling.report",
    "starved_entries": "fasttok_plugin.sampling.budgets",
    "valid_start_counts": "fasttok_plugin.sampling.starts",
    "valid_start_rows": "fasttok_plugin.sampling.starts",
}

__all__ = [
    "FROM_CONFIG",
    "PART_CHUNKS",
    "ChunkBatch",
    "ChunkSampler",
    "DatasetSampleReport",
    "SamplingError",
    "largest_remainder",
    "longest_chunk",
    "peak_rss_mb",
    "sample_warnings",
    "starved_entries",
    "valid_start_counts",
    "valid_start_rows",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
