"""Real English sentences available offline: CPython's own reference documentation.

The sentences come from ``pydoc_data.topics``, the text of the Python Language Reference and
Library Reference topics that every CPython installation ships (used by ``help()``): prose
written by people, not generated. Code lines, headings and tables are dropped.
"""

from __future__ import annotations

import re

__all__ = ["reference_sentences"]

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def reference_sentences(
    count: int | None = None, min_words: int = 6, max_words: int = 40
) -> list[str]:
    """Distinct prose sentences of the Python reference documentation, in document order.

    Args:
        count: how many to return (None: all, about 1,500 with CPython 3.11).
        min_words: shortest sentence kept, in words.
        max_words: longest sentence kept, in words.

    Raises:
        ValueError: fewer than ``count`` sentences are available.
    """
    from pydoc_data.topics import topics

    seen, out = set(), []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            lines = [ln.strip() for ln in para.splitlines()]
            if any(ln.startswith((">>>", "...", "*", "+", "|", "=")) for ln in lines):
                continue
            text = " ".join(ln for ln in lines if ln)
            for sentence in _SPLIT.split(text):
                words = sentence.split()
                if not min_words <= len(words) <= max_words or not sentence[0].isupper():
                    continue
                if not sentence.endswith((".", "?", "!")) or sentence in seen:
                    continue
                if sum(c.isalpha() or c == " " for c in sentence) < 0.85 * len(sentence):
                    continue  # mostly code or symbols
                seen.add(sentence)
                out.append(sentence)
    if count is not None and count > len(out):
        raise ValueError(f"reference_sentences: asked for {count}, only {len(out)} available")
    return out if count is None else out[:count]
