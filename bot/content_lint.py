"""Editorial lint for the tip library: what `load_content` cannot see.

`load_content` makes sure content/ is well formed. This module checks what the tips *say*:
enough tips per topic, an action and a source on every tip, no near-duplicate tips, no
forbidden claims (the phrases in `content/forbidden.yml`), and plain, readable language. It
also summarises the library for `python -m bot content check`.

Problems are phrased like bot/content.py: `topics/<id>.yml: tip <tip-id>: <problem>`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bot.content import YAML_LOADER, Content, ContentError, Tip, Topic

RULES_FILE = "forbidden.yml"

MIN_TIPS_PER_TOPIC = 12

# ---- Near-duplicates: word-shingle Jaccard similarity of tip texts.
#
# Measured on the real library (17 topics, 221 tips, texts of 53-75 words, median 63; all
# 24,310 pairs): the highest similarity each tip has to any other tip, by shingle size k:
#
#   k   median   95th pct   highest pair
#   1    0.221     0.286     0.368  mood-07 / care-07 (shared vocabulary: no signal)
#   2    0.047     0.087     0.111  flare-09 / care-13
#   3    0.018     0.040     0.052  stress-01 / learn-05 (same topic: mood-07 / mood-08 0.045)
#   4    0.008     0.019     0.032  flare-09 / care-13
#
# Rewording every real tip (n words replaced at random, 5 tries each, 1,105 texts), the
# similarity the reworded copy keeps with its original at k = 3:
#
#   n words changed   2      4      6      8      12  (of ~63)
#   lowest          0.79   0.62   0.48   0.38   0.21
#   5th percentile  0.81   0.65   0.53   0.43   0.29
#
# Replacing one whole sentence keeps a median 0.68 (5th pct 0.56; lowest 0.19, a short tip
# losing its longest sentence); reordering sentences keeps 0.92+. The 5th percentile of a
# 12-word rewording against the closest distinct pair: k = 2 0.44 vs 0.111 (4.0×), k = 3
# 0.29 vs 0.052 (5.6×), k = 4 0.19 vs 0.032 (5.9×). k = 3 and 4 separate about equally
# well, k = 2 worse (common pairs such as "your back" blur it); k = 3 keeps the scores of
# light rewordings high (4 words: 0.62+, vs 0.52+ at k = 4), so the limit can sit well
# clear of both sides. The limit 0.25 is about five times the closest distinct pair today,
# and catches every rewording of up to 8 words in 63 and nearly all of 12 (one word in
# five). tests/test_content_lint.py swaps 4 words of sleep-01 (keeps 0.74: caught) and
# checks mood-07 / care-07 (0.038, both on counselling) and mood-07 / mood-08 pass.
SHINGLE_SIZE = 3
DUPLICATE_THRESHOLD = 0.25

# ---- Readability: Flesch Reading Ease of each tip's text + action.
#
#   FRE = 206.835 - 1.015 × (words / sentences) - 84.6 × (syllables / words)
#
# 60-70 is "plain English", the level plain-language guides aim for at least; 70-80
# "fairly easy", 80-90 "easy". The real library, with `syllables` below, measures:
#   per tip:   lowest 63.8 (mood-07), then 73.0; 5th pct 77.6; median 88.6; highest 102.2
#   per topic: lowest 83.3 (genes), 84.2 (learn), 85.1 (care); highest 93.9 (pacing);
#              whole library 88.1
# Both floors sit a little below today's lowest value, so the check passes the library as
# it stands and fails when it drifts: no tip below plain English (60), and no topic's
# average below "easy" (80), which would take several hard tips in one topic.
TOPIC_READABILITY_FLOOR = 80.0  # a topic's average
TIP_READABILITY_FLOOR = 60.0  # any single tip

_WORD = re.compile(r"[a-z]+(?:['’-][a-z]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=[\s\"'”’)]|$)")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")
_SOUNDED_ENDINGS = ("ted", "ded", "ses", "zes", "xes", "ces", "ges", "ches", "shes")


# ---------------------------------------------------------------- rules


def _tokens(text: str) -> frozenset[str]:
    """Runs of letters and runs of digits ("400mg" → 400, mg), for a quick pre-check."""
    return frozenset(re.findall(r"[^\W\d_]+|\d+", text.lower()))


def _edge(character: str) -> str:
    """What may not touch a phrase that starts or ends with `character`."""
    if character.isalpha():
        return r"[^\W\d_]"  # a letter: "mg" not in "omg", but "400mg" counts
    if character.isalnum():
        return r"\w"  # a digit: "100%" not in "1100%"
    return "(?!)"  # punctuation: nothing


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Whole words, any case, any run of spaces between words ("tens" never in "tension")."""
    words = phrase.split()
    body = r"\s+".join(re.escape(word).replace("'", "['’]") for word in words)
    return re.compile(f"(?<!{_edge(phrase[0])}){body}(?!{_edge(phrase[-1])})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ForbiddenPhrase:
    """A phrase tips must not use, and why.

    In `allowed_topics` the phrase may appear, but only in a tip (or overview) that also
    says one of `allowed_when` (e.g. "advise against"): naming a thing to warn against it.
    """

    phrase: str
    group: str
    reason: str
    allowed_topics: frozenset[str] = frozenset()
    allowed_when: tuple[str, ...] = ()
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    tokens: frozenset[str] = field(init=False, repr=False, compare=False)
    cue_patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _phrase_pattern(self.phrase))
        object.__setattr__(self, "tokens", _tokens(self.phrase))
        cues = tuple(_phrase_pattern(cue) for cue in self.allowed_when)
        object.__setattr__(self, "cue_patterns", cues)

    def allowed_in(self, topic_id: str, whole_text: str) -> bool:
        """Whether a mention in `topic_id`, in a tip or overview reading `whole_text`, is fine."""
        if topic_id not in self.allowed_topics:
            return False
        return not self.cue_patterns or any(cue.search(whole_text) for cue in self.cue_patterns)


@dataclass(frozen=True, slots=True)
class LintRules:
    """What the lint enforces: the forbidden phrases plus the numeric limits."""

    phrases: tuple[ForbiddenPhrase, ...] = ()
    min_tips_per_topic: int = MIN_TIPS_PER_TOPIC
    shingle_size: int = SHINGLE_SIZE
    duplicate_threshold: float = DUPLICATE_THRESHOLD
    topic_readability_floor: float = TOPIC_READABILITY_FLOOR
    tip_readability_floor: float = TIP_READABILITY_FLOOR


def _strings(where: str, value: Any, key: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item.strip() for item in value
    ):
        problems.append(f"{where}: '{key}' must be a list of non-empty text")
        return []
    return [item.strip() for item in value]


def _parse_group(
    index: int, group: Any, seen: dict[str, str], problems: list[str]
) -> Iterator[ForbiddenPhrase]:
    if not isinstance(group, dict):
        problems.append(f"{RULES_FILE}: group {index + 1} is not a mapping")
        return
    name = group.get("name")
    label = name.strip() if isinstance(name, str) and name.strip() else f"group {index + 1}"
    where = f"{RULES_FILE}: {label}"
    reason = group.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        problems.append(f"{where}: missing or empty 'reason'")
        reason = ""
    allowed_topics = frozenset(
        _strings(where, group.get("allowed_topics"), "allowed_topics", problems)
    )
    allowed_when = tuple(_strings(where, group.get("allowed_when"), "allowed_when", problems))
    entries = group.get("phrases")
    if not isinstance(entries, list) or not entries:
        problems.append(f"{where}: 'phrases' must be a non-empty list")
        return
    for entry in entries:
        # A phrase is plain text (it takes the group's reason) or {phrase, reason}.
        own_reason: Any = None
        if isinstance(entry, dict):
            own_reason = entry.get("reason")
            entry = entry.get("phrase")
        if not isinstance(entry, str | int | float) or not str(entry).strip():
            problems.append(f"{where}: a phrase is empty or not text")
            continue
        phrase = " ".join(str(entry).split()).lower()
        if phrase in seen:
            problems.append(f"{where}: '{phrase}' is listed twice (also in {seen[phrase]})")
            continue
        seen[phrase] = label
        yield ForbiddenPhrase(
            phrase=phrase,
            group=label,
            reason=own_reason.strip()
            if isinstance(own_reason, str) and own_reason.strip()
            else reason,
            allowed_topics=allowed_topics,
            allowed_when=allowed_when,
        )


def load_rules(path: Path) -> LintRules:
    """Read `forbidden.yml`; raise ContentError (`forbidden.yml: problem` lines) if it is bad."""
    problems: list[str] = []
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except FileNotFoundError:
        raise ContentError([f"{RULES_FILE}: file is missing"]) from None
    except yaml.YAMLError as exc:
        raise ContentError([f"{RULES_FILE}: not valid YAML ({str(exc).splitlines()[0]})"]) from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list) or not groups:
        raise ContentError([f"{RULES_FILE}: expected a non-empty 'groups' list"])
    seen: dict[str, str] = {}
    phrases = [
        phrase
        for index, group in enumerate(groups)
        for phrase in _parse_group(index, group, seen, problems)
    ]
    if problems:
        raise ContentError(problems)
    return LintRules(phrases=tuple(phrases))


# ---------------------------------------------------------------- readability


def words(text: str) -> list[str]:
    """Lower-case words of `text` (letters; inner apostrophes and hyphens kept, digits skipped)."""
    return _WORD.findall(text.lower())


@cache
def syllables(word: str) -> int:
    """Estimated syllables in an English word.

    Heuristic (right for most everyday words, never below 1):
    1. count groups of adjacent vowels, a e i o u and y (y not as the first letter);
    2. a final silent e after a consonant does not count (make, smile, breathe), except
       consonant + "le", which is its own syllable (table, gentle, people);
    3. "-ed" and "-es" after a consonant are silent (walked, makes) unless the e is needed
       to say them: "-ted"/"-ded" (needed), and "-ses", "-zes", "-xes", "-ces", "-ges",
       "-ches", "-shes" (changes, uses);
    4. hyphenated words add up their parts (flare-up = 2); apostrophes are dropped
       (doctor's = doctors = 2, you're = youre = 1).
    """
    parts = [part for part in word.split("-") if part]
    if len(parts) > 1:
        return sum(syllables(part) for part in parts)
    letters = re.sub(r"[^a-z]", "", word.lower())
    if not letters:
        return 0
    count = len(_VOWEL_GROUP.findall(letters[0].replace("y", "") + letters[1:]))
    if len(letters) > 2 and letters.endswith("e") and _consonant(letters[-2]):
        if not (letters.endswith("le") and _consonant(letters[-3])):
            count -= 1  # silent final e; consonant + "le" keeps its syllable
    elif (
        len(letters) > 3
        and letters.endswith(("ed", "es"))
        and _consonant(letters[-3])
        and not letters.endswith(_SOUNDED_ENDINGS)
    ):
        count -= 1  # silent e in -ed / -es
    return max(count, 1)


def _consonant(letter: str) -> bool:
    return letter not in "aeiouy"


def sentences(text: str) -> int:
    """Sentences in `text`: runs ended by . ! or ?, plus a last unfinished one; at least 1."""
    pieces = _SENTENCE_END.split(text)
    return max(1, sum(1 for piece in pieces if _WORD.search(piece.lower())))


def flesch_reading_ease(text: str) -> float:
    """Flesch Reading Ease of `text` (higher is easier; 60-70 is plain English); 0 if no words."""
    found = words(text)
    if not found:
        return 0.0
    total_syllables = sum(syllables(word) for word in found)
    return 206.835 - 1.015 * len(found) / sentences(text) - 84.6 * total_syllables / len(found)


def tip_readability(tip: Tip) -> float:
    """Flesch Reading Ease of what a reader works through: the tip's text, then its action."""
    return flesch_reading_ease(f"{tip.text}\n{tip.action}")


# ---------------------------------------------------------------- near-duplicates


def shingles(text: str, k: int = SHINGLE_SIZE) -> frozenset[tuple[str, ...]]:
    """The set of k-word runs of `text` (lower case, punctuation stripped)."""
    tokens = re.findall(r"\w+", re.sub(r"['’]", "", text.lower()))
    if len(tokens) <= k:
        return frozenset({tuple(tokens)}) if tokens else frozenset()
    return frozenset(tuple(tokens[i : i + k]) for i in range(len(tokens) - k + 1))


def jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    if not a and not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


@dataclass(frozen=True, slots=True)
class SimilarPair:
    first: Tip
    second: Tip
    similarity: float


def similar_pairs(tips: Sequence[Tip], k: int = SHINGLE_SIZE) -> list[SimilarPair]:
    """Every pair of tips sharing at least one shingle, most similar first.

    Shingle sets are built once; an inverted index (shingle → tips) counts shared shingles,
    so only pairs that overlap at all are touched, never the strings themselves.
    """
    sets = [shingles(tip.text, k) for tip in tips]
    holders: dict[tuple[str, ...], list[int]] = {}
    for index, shingle_set in enumerate(sets):
        for shingle in shingle_set:
            holders.setdefault(shingle, []).append(index)
    shared: Counter[tuple[int, int]] = Counter()
    for indices in holders.values():
        for position, first in enumerate(indices):
            for second in indices[position + 1 :]:
                shared[first, second] += 1
    pairs = [
        SimilarPair(tips[i], tips[j], count / (len(sets[i]) + len(sets[j]) - count))
        for (i, j), count in shared.items()
    ]
    pairs.sort(key=lambda pair: (-pair.similarity, pair.first.id, pair.second.id))
    return pairs


# ---------------------------------------------------------------- forbidden phrases


def _topic_fields(topic: Topic) -> Iterator[tuple[Tip | None, str, str]]:
    """(tip or None for the overview, field name, text) for everything the lint searches."""
    yield None, "overview", topic.overview
    for tip in topic.tips:
        yield tip, "title", tip.title
        yield tip, "text", tip.text
        yield tip, "action", tip.action


def forbidden_mentions(
    topic: Topic, phrases: Iterable[ForbiddenPhrase]
) -> Iterator[tuple[Tip | None, str, ForbiddenPhrase, str]]:
    """(tip or None, field, phrase, matched text) for each forbidden phrase that is used."""
    phrases = tuple(phrases)
    for tip, name, text in _topic_fields(topic):
        whole = topic.overview if tip is None else f"{tip.title}\n{tip.text}\n{tip.action}"
        present = _tokens(text)
        for phrase in phrases:
            # Cheap word-set test first; the regex only runs when every word is there.
            match = phrase.pattern.search(text) if phrase.tokens <= present else None
            if match and not phrase.allowed_in(topic.id, whole):
                yield tip, name, phrase, match.group()


# ---------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class TopicSummary:
    topic_id: str
    tips: int
    average_length: float
    average_readability: float


@dataclass(frozen=True, slots=True)
class LibrarySummary:
    topics: tuple[TopicSummary, ...]
    tips: int
    sources_used: int
    sources_listed: int
    average_length: float
    average_readability: float
    closest_pair: SimilarPair | None
    hardest_tip: tuple[str, float] | None

    def format(self, rules: LintRules | None = None) -> str:
        """An aligned table, one row per topic, then the whole library and the limits."""
        rules = rules or LintRules()
        width = max([len("topic"), *(len(t.topic_id) for t in self.topics)])
        header = f"{'topic':<{width}}  {'tips':>4}  {'avg length':>10}  {'readability':>11}"
        lines = [header, "-" * len(header)]
        rows = [(t.topic_id, t.tips, t.average_length, t.average_readability) for t in self.topics]
        rows.append(("all", self.tips, self.average_length, self.average_readability))
        for index, (name, tips, length, readability) in enumerate(rows):
            if index == len(rows) - 1:
                lines.append("-" * len(header))
            lines.append(f"{name:<{width}}  {tips:>4}  {length:>10.0f}  {readability:>11.1f}")
        lines.append(
            f"{len(self.topics)} topics, {self.tips} tips, "
            f"{self.sources_used} of {self.sources_listed} sources used; "
            f"average text {self.average_length:.0f} characters, "
            f"average readability {self.average_readability:.1f} (Flesch Reading Ease)"
        )
        if self.hardest_tip is not None:
            tip_id, score = self.hardest_tip
            lines.append(
                f"hardest tip to read: {tip_id} ({score:.1f}; floors: "
                f"{rules.tip_readability_floor:.0f} a tip, {rules.topic_readability_floor:.0f} "
                "a topic's average)"
            )
        if self.closest_pair is not None:
            pair = self.closest_pair
            lines.append(
                f"most similar tips: {pair.first.id} and {pair.second.id} "
                f"({pair.similarity:.2f}; limit {rules.duplicate_threshold:.2f})"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class LintReport:
    problems: list[str]
    summary: LibrarySummary
    rules: LintRules

    @property
    def ok(self) -> bool:
        return not self.problems

    def format_summary(self) -> str:
        return self.summary.format(self.rules)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _where(topic_id: str, tip: Tip | None = None) -> str:
    return f"topics/{topic_id}.yml" + (f": tip {tip.id}" if tip is not None else "")


def _summarise(
    content: Content, scores: Mapping[str, float], closest: SimilarPair | None
) -> LibrarySummary:
    topics = tuple(
        TopicSummary(
            topic_id=topic.id,
            tips=len(topic.tips),
            average_length=_mean([len(tip.text) for tip in topic.tips]),
            average_readability=_mean([scores[tip.id] for tip in topic.tips]),
        )
        for topic in content.topics.values()
    )
    tips = [tip for topic in content.topics.values() for tip in topic.tips]
    used = {source for tip in tips for source in tip.sources if source in content.sources}
    hardest = min(scores.items(), key=lambda item: (item[1], item[0]), default=None)
    return LibrarySummary(
        topics=topics,
        tips=len(tips),
        sources_used=len(used),
        sources_listed=len(content.sources),
        average_length=_mean([len(tip.text) for tip in tips]),
        average_readability=_mean([scores[tip.id] for tip in tips]),
        closest_pair=closest,
        hardest_tip=hardest,
    )


def lint(content: Content, rules: LintRules) -> LintReport:
    """Check what the tips say; the report lists problems (empty when all is well) and a summary."""
    problems: list[str] = []
    scores: dict[str, float] = {}
    for topic in content.topics.values():
        where = _where(topic.id)
        if len(topic.tips) < rules.min_tips_per_topic:
            problems.append(
                f"{where}: has {len(topic.tips)} tips, needs at least {rules.min_tips_per_topic}"
            )
        for tip in topic.tips:
            label = _where(topic.id, tip)
            if not tip.text.strip():
                problems.append(f"{label}: has no text")
            if not tip.action.strip():
                problems.append(f"{label}: has no action (one small thing to do)")
            if not any(source.strip() for source in tip.sources):
                problems.append(f"{label}: has no source")
            unknown = [source for source in tip.sources if source not in content.sources]
            problems.extend(f"{label}: source '{s}' is not in sources.yml" for s in unknown)
            scores[tip.id] = tip_readability(tip)
            if tip.text.strip() and scores[tip.id] < rules.tip_readability_floor:
                problems.append(
                    f"{label}: hard to read (Flesch Reading Ease {scores[tip.id]:.1f}, "
                    f"floor {rules.tip_readability_floor:.0f}); use shorter sentences and words"
                )
        for found_in, name, phrase, matched in forbidden_mentions(topic, rules.phrases):
            label = _where(topic.id, found_in)
            problems.append(f"{label}: {name} says '{matched}' ({phrase.group}: {phrase.reason})")
        average = _mean([scores[tip.id] for tip in topic.tips])
        if topic.tips and average < rules.topic_readability_floor:
            problems.append(
                f"{where}: tips are hard to read on average (Flesch Reading Ease {average:.1f}, "
                f"floor {rules.topic_readability_floor:.0f})"
            )
    pairs = similar_pairs(list(content.tips.values()), rules.shingle_size)
    for pair in pairs:
        if pair.similarity <= rules.duplicate_threshold:
            break
        problems.append(
            f"{_where(pair.first.topic_id, pair.first)}: text is nearly the same as tip "
            f"{pair.second.id} (similarity {pair.similarity:.2f}, limit "
            f"{rules.duplicate_threshold:.2f}); merge them or make one say something new"
        )
    summary = _summarise(content, scores, pairs[0] if pairs else None)
    return LintReport(problems=problems, summary=summary, rules=rules)


def lint_content_dir(content: Content, content_dir: Path) -> LintReport:
    """Lint with the rules in `content_dir/forbidden.yml`; ContentError if those are bad."""
    return lint(content, load_rules(content_dir / RULES_FILE))


def check_content(content: Content, content_dir: Path) -> LintReport:
    """For start-up: lint, and raise ContentError listing the problems if there are any."""
    report = lint_content_dir(content, content_dir)
    if report.problems:
        raise ContentError(report.problems)
    return report
