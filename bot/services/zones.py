"""What a person types for /timezone, or where they are, to an IANA time zone.

Lookups accept, ignoring case, accents, spaces and punctuation: IANA names, the city part of
every zone, aliases and country names from content/places.yml, tzdata's country names and ISO
codes, and UTC offsets. What matches exactly is a confident answer unless it means several
places; near misses only ever come back as suggestions. Every key returned is a tzdata zone.
"""

from __future__ import annotations

import difflib
import importlib.resources
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

MAX_INPUT = 100
MAX_SUGGESTIONS = 6
FUZZY_CUTOFF = 0.75
FUZZY_MIN_LENGTH = 3
MAX_PARTS = 4
LEGACY = frozenset({"Factory", "localtime", "posixrules"})
# Offsets that are not whole hours, to a zone whose standard time has that offset (minutes).
PART_HOUR_ZONES: Mapping[int, str] = {
    -570: "Pacific/Marquesas",
    -210: "America/St_Johns",
    210: "Asia/Tehran",
    270: "Asia/Kabul",
    330: "Asia/Kolkata",
    345: "Asia/Kathmandu",
    390: "Asia/Yangon",
    525: "Australia/Eucla",
    570: "Australia/Darwin",
    630: "Australia/Lord_Howe",
    765: "Pacific/Chatham",
}
MIN_OFFSET = -12 * 60
MAX_OFFSET = 14 * 60

_OFFSET = re.compile(
    r"(?:utc|gmt)?(?P<sign>[+-])(?:(?P<hours>\d{1,2})(?::(?P<minutes>\d{2}))?|(?P<hhmm>\d{4}))",
    re.ASCII,
)
_ZERO_OFFSET = frozenset({"utc", "gmt", "z"})
_MINUS = str.maketrans({"−": "-", "–": "-", "‒": "-", "—": "-", "＋": "+"})
_WORD_SPLIT = re.compile(r"[\W_]+")
_KEY_DROP = re.compile(r"[^\w/+-]|_|-(?!\d)")
_DROPPED_WORDS = frozenset({"the", "and"})
_WORD_FORMS: Mapping[str, str] = {"saint": "st"}


@dataclass(frozen=True, slots=True)
class ZoneChoice:
    """An IANA zone key and a label for a button or reply, like "Berlin (Europe/Berlin)"."""

    key: str
    label: str


@dataclass(frozen=True, slots=True)
class ZoneLookup:
    """A confident `zone`, or 1-6 `suggestions` to pick from (one for a lone typo), or neither."""

    zone: ZoneChoice | None
    suggestions: tuple[ZoneChoice, ...]


NOTHING = ZoneLookup(None, ())


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _name_form(text: str) -> str:
    """The form names are matched in: no case, accents, spaces or punctuation; Saint is St."""
    words = [_WORD_FORMS.get(word, word) for word in _WORD_SPLIT.split(_fold(text)) if word]
    return "".join(word for word in words if word not in _DROPPED_WORDS)


def _key_form(text: str) -> str:
    """The form IANA keys are matched in: like _name_form, but keeping "/" and offset signs."""
    return _KEY_DROP.sub("", _fold(text.translate(_MINUS)))


def _offset_label(minutes: int) -> str:
    """ "UTC+02:00" for 120, "UTC-03:30" for -210, "UTC" for 0."""
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def _parse_offset(text: str) -> int | None:
    """Minutes east of UTC written as "UTC+2", "GMT-3", "+05:30", "-0330", "Z"; else None."""
    compact = "".join(text.translate(_MINUS).casefold().split())
    if compact in _ZERO_OFFSET:
        return 0
    match = _OFFSET.fullmatch(compact)
    if match is None:
        return None
    if match["hhmm"] is not None:
        hours, minutes = int(match["hhmm"][:2]), int(match["hhmm"][2:])
    else:
        hours, minutes = int(match["hours"]), int(match["minutes"] or 0)
    if minutes >= 60:
        return None
    total = hours * 60 + minutes
    return -total if match["sign"] == "-" else total


def _offset_zone(minutes: int) -> ZoneChoice | None:
    """The zone for a fixed UTC offset: Etc/GMT∓N for whole hours, else a real zone, or None."""
    if not MIN_OFFSET <= minutes <= MAX_OFFSET:
        return None
    if minutes == 0:
        return ZoneChoice("UTC", "UTC")
    if minutes % 60 == 0:
        # POSIX-style names: Etc/GMT-2 is two hours *ahead* of UTC.
        hours = minutes // 60
        return ZoneChoice(f"Etc/GMT{-hours:+d}", _offset_label(minutes))
    key = PART_HOUR_ZONES.get(minutes)
    if key is None:
        return None
    return ZoneChoice(key, f"{_offset_label(minutes)} ({key})")


def _city_label(key: str) -> str:
    """ "New York (America/New_York)" for a region key; offsets and bare keys as they are."""
    hours = key.removeprefix("Etc/GMT")
    if hours != key and hours[:1] in ("+", "-") and hours[1:].isdigit():
        return _offset_label(-int(hours) * 60)  # POSIX-style: Etc/GMT-2 is UTC+02:00
    if "/" not in key:
        return key
    return f"{key.rsplit('/', 1)[1].replace('_', ' ')} ({key})"


def _tzdata_text(*path: str) -> str:
    return importlib.resources.files("tzdata").joinpath(*path).read_text("utf-8")


def _tab_rows(name: str) -> Iterable[list[str]]:
    for line in _tzdata_text("zoneinfo", name).splitlines():
        if line and not line.startswith("#"):
            yield line.split("\t")


def _zone_names(value: object, where: str, known: frozenset[str]) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not names:
        raise ValueError(f"places: {where}: expected a zone or a list of zones")
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise ValueError(f"places: {where}: {name!r} is not an IANA time zone")
    return tuple(names)


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = data.get(name) or {}
    if not isinstance(section, Mapping):
        raise ValueError(f"places: {name} must be a mapping")
    return section


class ZoneDirectory:
    """Every name a zone goes by; build once with `load` and keep it."""

    __slots__ = (
        "_available",
        "_codes",
        "_countries",
        "_country_choices",
        "_country_zones",
        "_finder",
        "_fuzzy",
        "_keys",
        "_legacy",
        "_letters",
        "_longest",
        "_places",
    )

    def __init__(
        self,
        available: frozenset[str],
        zone_tab: Sequence[tuple[str, str]],
        zone1970: Sequence[tuple[str, str]],
        country_names: Mapping[str, str],
        aliases: Mapping[str, tuple[str, tuple[str, ...]]],
        country_aliases: Mapping[str, Sequence[str]],
        country_zones: Mapping[str, tuple[str, ...]],
    ) -> None:
        self._available = available
        self._keys: dict[str, str] = {}
        self._legacy: dict[str, str] = {}
        for key in sorted(available):
            (self._keys if "/" in key else self._legacy).setdefault(_key_form(key), key)

        self._places: dict[str, tuple[ZoneChoice, ...]] = {}
        for _code, key in zone_tab:
            city = _name_form(key.rsplit("/", 1)[1])
            self._places.setdefault(city, (ZoneChoice(key, _city_label(key)),))
        for display, keys in aliases.values():
            choices = tuple(ZoneChoice(key, f"{display} ({key})") for key in keys)
            self._places[_name_form(display)] = choices

        zones_by_country: dict[str, list[str]] = {}
        for code, key in zone_tab:
            zones_by_country.setdefault(code, []).append(key)
        for code, keys in country_zones.items():
            zones_by_country.setdefault(code, []).extend(keys)
        # Every zone whose clock a country keeps, to tell whether a place lies in it.
        regions = {code: set(keys) for code, keys in zones_by_country.items()}
        for code, key in zone1970:
            regions.setdefault(code, set()).add(key)
        self._country_zones = {code: frozenset(keys) for code, keys in regions.items()}
        self._countries: dict[str, tuple[str, ...]] = {}
        for code, name in country_names.items():
            if code not in zones_by_country:
                continue
            for variant in {_name_form(name), _name_form(re.sub(r"\(.*?\)", "", name))}:
                if variant and code not in self._countries.get(variant, ()):
                    self._countries[variant] = (*self._countries.get(variant, ()), code)
        for code, names in country_aliases.items():
            for name in names:
                self._countries[_name_form(name)] = (code,)
        self._codes = {code.casefold(): code for code in zones_by_country}
        self._country_choices: dict[str, tuple[ZoneChoice, ...]] = {}
        for code, listed in zones_by_country.items():
            keys = country_zones.get(code) or tuple(listed)
            if len(keys) == 1:
                shown = country_aliases[code][0] if code in country_aliases else country_names[code]
                label = f"{shown} ({keys[0]})"
                self._country_choices[code] = (ZoneChoice(keys[0], label),)
            else:
                self._country_choices[code] = tuple(
                    ZoneChoice(key, _city_label(key)) for key in keys[:MAX_SUGGESTIONS]
                )

        fuzzy = {name for name in self._places if len(name) >= FUZZY_MIN_LENGTH}
        fuzzy |= {name for name in self._countries if len(name) >= FUZZY_MIN_LENGTH}
        self._fuzzy = tuple(sorted(fuzzy))
        self._longest = max((len(name) for name in self._fuzzy), default=0)
        self._letters: dict[tuple[str, int], list[int]] | None = None  # see _letter_index
        self._finder: Any = None

    @classmethod
    def load(cls, places_path: Path) -> ZoneDirectory:
        """Read tzdata's tables and places.yml; raises ValueError on an unknown zone in it."""
        available = known_zones()
        zone_tab = tuple((row[0], row[2]) for row in _tab_rows("zone.tab") if row[2] in available)
        zone1970 = tuple(
            (code, row[2])
            for row in _tab_rows("zone1970.tab")
            if row[2] in available
            for code in row[0].split(",")
        )
        country_names = {row[0]: row[1] for row in _tab_rows("iso3166.tab")}
        with places_path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if not isinstance(data, Mapping):
            raise ValueError("places: expected a mapping at the top")
        aliases: dict[str, tuple[str, tuple[str, ...]]] = {}
        for name, value in _section(data, "aliases").items():
            form = _name_form(str(name))
            if not form or form in aliases:
                raise ValueError(f"places: aliases: {name!r} repeats {aliases[form][0]!r}")
            aliases[form] = (str(name), _zone_names(value, str(name), available))
        country_aliases: dict[str, list[str]] = {}
        for code, names in _section(data, "countries").items():
            if code not in country_names or not isinstance(names, list) or not names:
                raise ValueError(f"places: countries: {code!r} needs a known code and names")
            country_aliases[code] = [str(name) for name in names]
        country_zones = {
            str(code): _zone_names(value, f"country_zones: {code}", available)
            for code, value in _section(data, "country_zones").items()
        }
        unknown = sorted(set(country_zones) - set(country_names))
        if unknown:
            raise ValueError(f"places: country_zones: unknown codes {unknown}")
        return cls(
            available,
            zone_tab,
            zone1970,
            country_names,
            aliases,
            country_aliases,
            country_zones,
        )

    def lookup(self, text: str) -> ZoneLookup:
        """What `text` names: a zone, suggestions, or nothing. Never raises."""
        cleaned = text.strip()
        if not cleaned or len(cleaned) > MAX_INPUT:
            return NOTHING
        minutes = _parse_offset(cleaned)
        if minutes is not None:
            zone = _offset_zone(minutes)
            return NOTHING if zone is None else ZoneLookup(zone, ())
        found = self._exact(cleaned)
        if found is not None:
            return _result(found)
        qualified = self._qualified(cleaned)
        if qualified is not None:
            return qualified
        parts = self._parts(cleaned)
        for part in parts:
            found = self._exact(part)
            if found is not None:
                return _result(found)
        for part in (cleaned, *parts[:1]):
            near = self._near(_name_form(part))
            if near:
                return _result(near, near=True)
        return NOTHING

    def from_location(self, latitude: float, longitude: float) -> ZoneChoice | None:
        """The zone at a point on land, or None at sea or for impossible coordinates."""
        try:
            lat, lng = float(latitude), float(longitude)
        except (TypeError, ValueError):
            return None
        if not (math.isfinite(lat) and math.isfinite(lng)):
            return None
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
            return None
        if self._finder is None:
            from timezonefinder import TimezoneFinder  # slow to import and build: only if used

            self._finder = TimezoneFinder()
        try:
            key: object = self._finder.timezone_at_land(lng=lng, lat=lat)
        except ValueError:
            return None
        if not isinstance(key, str) or key not in self._available or key.startswith("Etc/"):
            return None
        return ZoneChoice(key, _city_label(key))

    def _country(self, code: str) -> tuple[ZoneChoice, ...]:
        """The zones to offer for an ISO country code: one means a confident match."""
        return self._country_choices.get(code, ())

    def _exact(self, text: str) -> tuple[ZoneChoice, ...] | None:
        key = self._keys.get(_key_form(text))
        if key is not None:
            return (ZoneChoice(key, _city_label(key)),)
        name = _name_form(text)
        if not name:
            return None
        places = self._places.get(name)
        if places is not None:
            return places
        codes = self._countries.get(name)
        if codes is None and len(name) == 2:
            code = self._codes.get(name)
            codes = None if code is None else (code,)
        if codes is not None:
            if len(codes) == 1:
                return self._country(codes[0])
            return tuple(choice for code in codes for choice in self._country(code)[:1])
        legacy = self._legacy.get(_key_form(text))
        if legacy is not None:
            return (ZoneChoice(legacy, _city_label(legacy)),)
        return None

    def _qualified(self, text: str) -> ZoneLookup | None:
        # "Berlin, Germany", "Hyderabad India", "Victoria, Canada": a place, then where it is.
        pieces = [piece.strip() for piece in text.split(",")]
        words = text.split()
        if len(pieces) > 1:
            splits = [(pieces[0], pieces[-1])]
        elif len(words) <= MAX_PARTS:
            cuts = range(1, len(words))
            splits = [(" ".join(words[:cut]), " ".join(words[cut:])) for cut in cuts]
        else:
            splits = []
        for head, tail in splits:
            place = self._exact(head)
            region = self._region(tail)
            if place is None or region is None:
                continue
            inside = [choice for choice in place if choice.key in region]
            if inside:
                return _result(inside)
            if len(_name_form(tail)) == 2:
                # "Birmingham AL" is Alabama, not Albania: ignore a code that does not fit.
                return _result(place)
            # "Paris, Texas": the two disagree, so offer both.
            return _result([*place, *(self._exact(tail) or ())], near=True)
        return None

    def _region(self, text: str) -> frozenset[str] | None:
        name = _name_form(text)
        codes = self._countries.get(name)
        if codes is None and name in self._codes:
            codes = (self._codes[name],)
        if codes:
            return frozenset().union(*(self._country_zones.get(code, ()) for code in codes))
        places = self._places.get(name)
        return None if places is None else frozenset(choice.key for choice in places)

    def _parts(self, text: str) -> list[str]:
        # "Munich, Germany" names the city first; "Europe/Munich" names it last.
        parts: list[str] = []
        for piece in text.split(","):
            parts.extend(reversed(piece.split("/")))
        stripped = [part.strip() for part in parts if part.strip()]
        return stripped[:MAX_PARTS] if len(stripped) > 1 else []

    def _letter_index(self) -> dict[tuple[str, int], list[int]]:
        """(character, n) → the names holding that character at least n times: counting a
        query's hits bounds each name's similarity before difflib looks at it. Built on the
        first near miss, not at start-up: only typos need it."""
        if self._letters is None:
            letters: dict[tuple[str, int], list[int]] = {}
            for number, name in enumerate(self._fuzzy):
                for char, count in Counter(name).items():
                    for nth in range(1, count + 1):
                        letters.setdefault((char, nth), []).append(number)
            self._letters = letters
        return self._letters

    def _near(self, name: str) -> tuple[ZoneChoice, ...]:
        if len(name) < FUZZY_MIN_LENGTH or len(name) * FUZZY_CUTOFF > self._longest * 2:
            return ()
        # Shared characters bound difflib's ratio: 2·shared / (len(a) + len(b)) ≥ ratio.
        letters = self._letter_index()
        shared: Counter[int] = Counter()
        for char, count in Counter(name).items():
            for nth in range(1, count + 1):
                shared.update(letters.get((char, nth), ()))
        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(name)
        scored: list[tuple[float, str]] = []
        for number, hits in shared.items():
            word = self._fuzzy[number]
            if 2 * hits < FUZZY_CUTOFF * (len(name) + len(word)):
                continue
            matcher.set_seq1(word)
            ratio = matcher.ratio()
            if ratio >= FUZZY_CUTOFF:
                scored.append((-ratio, word))
        groups: list[tuple[ZoneChoice, ...]] = []
        for _score, match in sorted(scored)[:MAX_SUGGESTIONS]:
            places = self._places.get(match)
            if places is not None:
                groups.append(places)
            for code in self._countries.get(match, ()):
                groups.append(self._country(code))
        # Each near name's first zone before anyone's second.
        width = max((len(group) for group in groups), default=0)
        return tuple(group[rank] for rank in range(width) for group in groups if rank < len(group))


def _result(choices: Iterable[ZoneChoice], *, near: bool = False) -> ZoneLookup:
    unique: dict[str, ZoneChoice] = {}
    for choice in choices:
        unique.setdefault(choice.key, choice)
    found = tuple(unique.values())[:MAX_SUGGESTIONS]
    if not found:
        return NOTHING
    if len(found) == 1 and not near:
        return ZoneLookup(found[0], ())
    return ZoneLookup(None, found)


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """Every IANA zone key tzdata knows (never folders or legacy files like posixrules)."""
    return frozenset(_tzdata_text("zones").split()) - LEGACY
