"""Text normalisation shared by the content model and the reasons.

Skills are kept as whole tokens (``skill:machine_learning``) *and* split into words, so a
declared interest "Machine Learning" matches a session tagged "machine learning" exactly and a
description mentioning "learning" a little.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SKILL_PREFIX = "skill:"

_WORD = re.compile(r"[a-z0-9][a-z0-9+#.]*[a-z0-9+#]|[a-z0-9]")
# Small English stop list: sklearn's is larger but also drops words like "system" and "computer".
_STOP = frozenset(
    """a an and are as at be by for from has have how in into is it its of on or our so that the
    their this to was we what when where which who will with you your about after all also any
    can do does get if more most new not one only out over per session sessions than then these
    they through up use using learn learning""".split()
)


def normalize_skill(skill: str) -> str:
    """Canonical key of a skill or interest: lowercase, single spaces, trimmed."""
    return " ".join(skill.lower().split())


def skill_token(skill: str) -> str:
    """The whole-skill feature name, e.g. ``skill:machine_learning``."""
    return SKILL_PREFIX + normalize_skill(skill).replace(" ", "_")


def words(text: str) -> list[str]:
    """Lowercase word tokens without stop words."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


def analyze(doc: tuple[str, tuple[str, ...]]) -> list[str]:
    """Analyzer for ``TfidfVectorizer``: ``(free text, skills)`` -> feature tokens."""
    text, skills = doc
    tokens = words(text)
    for skill in skills:
        if skill.strip():
            tokens.append(skill_token(skill))
            tokens.extend(words(skill))
    return tokens


def display_names(skills: Iterable[str]) -> dict[str, str]:
    """Map skill tokens to the first human spelling seen (for reasons)."""
    out: dict[str, str] = {}
    for skill in skills:
        if skill.strip():
            out.setdefault(skill_token(skill), skill.strip())
    return out
