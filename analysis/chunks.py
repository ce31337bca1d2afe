"""Long posts read whole: token ids split into overlapping windows, each token pooled exactly once.

A post that fits the encoder's window is one chunk, exactly as before. A longer one becomes windows
of `window` tokens (special tokens included) that overlap by `overlap` tokens, so every token is
encoded with context on both sides. Each chunk carries a pooling mask: a token in an overlap counts
only in the chunk where it sits nearer the middle (the boundary is the middle of the overlap), the
leading special token only in the first chunk and the trailing one only in the last, so pooling
over all chunks of a post sees each token once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Chunk:
    post: int  # index of the post the chunk belongs to
    ids: list[int]  # token ids with the tokenizer's special tokens
    pooled: list[int]  # 1 where the token counts in the post's pooling


@dataclass(frozen=True)
class Wrapper:
    """The special tokens a tokenizer puts around a sequence (e.g. [CLS] ... [SEP] for BERT)."""
    before: list[int]
    after: list[int]

    @classmethod
    def of(cls, tokenizer: Any) -> Wrapper:
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a")["input_ids"]
        at = next(i for i in range(len(full)) if full[i:i + len(plain)] == plain)
        return cls(list(full[:at]), list(full[at + len(plain):]))

    def __call__(self, ids: Sequence[int]) -> list[int]:
        return [*self.before, *ids, *self.after]


def split_windows(n_tokens: int, room: int, overlap: int) -> list[int]:
    """Start offsets of windows of `room` content tokens covering n_tokens, `overlap` shared."""
    if n_tokens <= room:
        return [0]
    stride = room - overlap
    starts = [0]
    while starts[-1] + room < n_tokens:
        starts.append(min(starts[-1] + stride, n_tokens - room))
    return starts


def chunk_post(post: int, content: Sequence[int], wrap: Wrapper, window: int, overlap: int,
               max_chunks: int | None = None) -> list[Chunk]:
    """The chunks of one post (content = its token ids without special tokens)."""
    before, after = len(wrap.before), len(wrap.after)
    room = window - before - after
    if room < 2 or not 0 <= overlap <= room // 2:
        raise ValueError(f"window {window} with overlap {overlap} leaves no room for content")
    starts = split_windows(len(content), room, overlap)
    if max_chunks is not None:
        starts = starts[:max_chunks]  # truncation only where a caller asks for it
    # Token i belongs to chunk k when bounds[k] <= i < bounds[k + 1]: the middle of each overlap.
    bounds = [0] + [(starts[k] + starts[k - 1] + room) // 2 for k in range(1, len(starts))] + [len(content)]
    chunks = []
    for k, start in enumerate(starts):
        piece = list(content[start:start + room])
        owned = [1 if bounds[k] <= start + i < bounds[k + 1] else 0 for i in range(len(piece))]
        first, last = k == 0, k == len(starts) - 1
        pooled = [int(first)] * before + owned + [int(last)] * after
        chunks.append(Chunk(post, wrap(piece), pooled))
    return chunks
