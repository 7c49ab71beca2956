"""Process-wide tuning every long-running service and bulk command applies at start."""

from __future__ import annotations

import gc

# Young-generation collections run once per this many net allocations instead of 700. Decoding a
# batch of 5,000 events allocates hundreds of thousands of objects that all live until the batch
# is written; with the default threshold the collector kept re-scanning them, and took about
# 45% of decode time (measured: 14.9 -> 8.4 us per record, 30,000 records, same run).
YOUNG_COLLECTION_EVERY = 50_000


def tune_garbage_collector() -> None:
    """Collect less often, and never re-scan what was loaded at start (modules, registry)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)
