"""Equal chunks of a batch of images, sized to stay in cache, for ``lax.scan``/``lax.map``.

The CPU convolution paths (``conv.chunked_kernel_gradient``, ``winograd``) run over chunks of
images so that a chunk's intermediates stay in cache and their buffers are reused. Chunks are
equal, so the chunk size is a divisor of the batch.
"""
from __future__ import annotations

import jax


def largest_chunk(batch: int, bytes_per_image: int, budget_bytes: int) -> int:
    """The largest divisor of ``batch`` (>= 1) whose images take at most ``budget_bytes``;
    1 when even one image takes more."""
    return max(d for d in range(1, batch + 1) if batch % d == 0 and (d == 1 or d * bytes_per_image <= budget_bytes))


def split_batch(a: jax.Array, chunk: int) -> jax.Array:
    """``(B, ...) -> (B // chunk, chunk, ...)``; ``chunk`` divides ``B``."""
    return a.reshape(a.shape[0] // chunk, chunk, *a.shape[1:])
