"""Spotting red-flag symptoms and crisis language in what people write."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from bot.content import CrisisLine, Safety

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})


def normalise(text: str) -> str:
    """Lower-case, straight apostrophes, single spaces."""
    return " ".join(text.translate(_APOSTROPHES).lower().split())


@lru_cache(maxsize=8)
def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted((re.escape(normalise(p)) for p in phrases), key=len, reverse=True)
    return re.compile(r"(?<![\w])(?:" + "|".join(alternatives) + r")(?![\w])")


def find_phrase(text: str, phrases: tuple[str, ...]) -> str | None:
    """The first listed phrase that occurs in `text` as whole words, if any."""
    if not phrases:
        return None
    match = _pattern(phrases).search(normalise(text))
    return match.group(0) if match else None


@dataclass(frozen=True, slots=True)
class Concern:
    """What a message needs before anything else: crisis support, red-flag guidance, or nothing."""

    crisis: bool
    redflag: bool

    @property
    def any(self) -> bool:
        return self.crisis or self.redflag


def assess(text: str, safety: Safety) -> Concern:
    """Check free text for crisis and red-flag phrases."""
    return Concern(
        crisis=find_phrase(text, safety.crisis_phrases) is not None,
        redflag=find_phrase(text, safety.redflag_phrases) is not None,
    )


def country_for(
    language_code: str | None, country: str | None, language_countries: Mapping[str, str]
) -> str | None:
    """The country whose crisis lines to show: a chosen one, else a guess from the language."""
    if country:
        return country.upper()
    if not language_code:
        return None
    code = language_code.lower().replace("_", "-")
    return language_countries.get(code) or language_countries.get(code.split("-", 1)[0])


def crisis_lines(safety: Safety, country: str | None) -> Iterable[CrisisLine]:
    """The country's lines first (when known), then the international fallback."""
    if country and country in safety.crisis_lines:
        yield from safety.crisis_lines[country]
    yield from safety.crisis_lines["default"]
