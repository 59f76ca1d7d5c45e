"""Matching what people write ("can't sleep", "stressed at work") to topics by their keywords."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from bot.content import Topic
from bot.services.safety import normalise

_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(normalise(text)))


def _stem(word: str) -> str:
    """A light stem so "stressed", "stressful" and "stress" meet (and "worrying", "worry")."""
    for _ in range(2):
        for suffix in ("ful", "ing", "ed", "es", "s", "y"):
            if len(word) - len(suffix) >= 3 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
    return word


@lru_cache(maxsize=4096)
def _keyword_stems(keyword: str) -> tuple[str, ...]:
    return tuple(_stem(w) for w in _words(keyword))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    size = len(needle)
    return size > 0 and any(
        haystack[i : i + size] == needle for i in range(len(haystack) - size + 1)
    )


def match_topics(text: str, topics: Mapping[str, Topic], limit: int = 2) -> list[Topic]:
    """The best `limit` topics for `text`, best first; multi-word keywords count more."""
    stems = tuple(_stem(w) for w in _words(text[:1000]))
    if not stems:
        return []
    scored: list[tuple[int, int, Topic]] = []
    for topic in topics.values():
        score = sum(
            len(needle) ** 2
            for keyword in topic.keywords
            if _contains(stems, needle := _keyword_stems(keyword))
        )
        if score:
            scored.append((score, -topic.order, topic))
    scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [topic for _, _, topic in scored[:limit]]
