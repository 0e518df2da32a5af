"""Ranking metrics with binary relevance."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence


def precision_at_k(ranked: Sequence[object], relevant: Collection[object], k: int = 10) -> float:
    """Hits in the top ``k`` divided by ``k`` (short lists are not rewarded)."""
    return sum(1 for x in ranked[:k] if x in relevant) / k


def recall_at_k(ranked: Sequence[object], relevant: Collection[object], k: int = 10) -> float:
    """Share of the relevant items found in the top ``k``."""
    if not relevant:
        return 0.0
    return sum(1 for x in ranked[:k] if x in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[object], relevant: Collection[object], k: int = 10) -> float:
    """Normalised discounted cumulative gain (log2 discount, binary gains)."""
    dcg = sum(1.0 / math.log2(i + 2) for i, x in enumerate(ranked[:k]) if x in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def coverage(recommended: Iterable[Iterable[object]], catalogue_size: int) -> float:
    """Share of the candidate catalogue that appears in at least one list."""
    if catalogue_size <= 0:
        return 0.0
    seen: set[object] = set()
    for lst in recommended:
        seen.update(lst)
    return len(seen) / catalogue_size
