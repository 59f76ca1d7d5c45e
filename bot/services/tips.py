"""Which tip a person gets next: fresh ones first, weighted towards what suits them.

Rules, for the tips in scope (every topic, or one topic for topic commands and buttons):
- A tip marked "Not for me" is retired for that person for good; the rest are eligible.
- Rounds: a tip is due when no eligible tip in scope has been shown fewer times than it. So
  nothing repeats until every eligible tip has been seen, and each later round goes through
  the tips again. Every showing in `seen` counts, whatever asked for it.
- The tip shown last is never shown again straight away while another eligible tip exists.
- A topic is drawn at random by `topic_weights` among the topics with a due tip; across topics,
  yesterday's daily topic is left out unless no other topic has a due tip (fresh tips come
  before varied topics). Within the topic: the first due tip in file order (the library goes
  from basic to advanced) while it is unseen, otherwise the one seen longest ago.
- Weights: 3.0 for a focus topic, 1.0 otherwise; × 0.7 per retired tip in the topic, never
  below 0.1 of the base; × 1.1 per tip marked "Helpful", at most × 1.5.

`seen` holds tip ids (they are unique across the library). Cost per call: one
counting pass over `seen` (in C), one step per topic, a pass over the tips of the topics the
person has seen, retired or rated something in, and, from the second round on, a walk back
through `seen` that stops once the drawn topic's oldest due tip is known. The delivery engine
chooses hundreds of tips per batch, so this path is kept lean; tests/services/test_tips.py
checks it against a plain reading of the rules above.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.content import Tip, Topic

FOCUS_WEIGHT = 3.0
BASE_WEIGHT = 1.0
NOT_FOR_ME_FACTOR = 0.7
NOT_FOR_ME_FLOOR = 0.1
HELPFUL_FACTOR = 1.1
HELPFUL_CAP = 1.5


@dataclass(frozen=True, slots=True)
class TipHistory:
    """What one person has been shown and said about tips; every field is plain data."""

    seen: Sequence[str] = ()  # ids of the tips shown, oldest first
    not_for_me: frozenset[str] = frozenset()
    helpful: frozenset[str] = frozenset()
    focus_topics: frozenset[str] = frozenset()
    last_daily_topic: str | None = None


def _weight(focus: bool, retired: int, helpful: int) -> float:
    base = FOCUS_WEIGHT if focus else BASE_WEIGHT
    damping = max(NOT_FOR_ME_FACTOR**retired, NOT_FOR_ME_FLOOR)
    return base * damping * min(HELPFUL_FACTOR**helpful, HELPFUL_CAP)


def topic_weights(topics: Mapping[str, Topic], history: TipHistory) -> dict[str, float]:
    """Each topic's draw weight; a tip in both feedback sets counts as "Not for me"."""
    weights: dict[str, float] = {}
    for topic_id, topic in topics.items():
        ids = [tip.id for tip in topic.tips]
        retired = history.not_for_me.intersection(ids)
        helpful = history.helpful.difference(retired).intersection(ids)
        weights[topic_id] = _weight(topic_id in history.focus_topics, len(retired), len(helpful))
    return weights


def _seen_longest_ago(tips: Sequence[Tip], shown_ids: list[str]) -> Tip:
    """Of `tips`, all already shown, the one whose latest showing is oldest."""
    pending = {tip.id: tip for tip in tips}
    for tip_id in reversed(shown_ids):
        if len(pending) == 1:
            break
        pending.pop(tip_id, None)
    return next(iter(pending.values()))


@dataclass(frozen=True, slots=True)
class _Library:
    """The tips of a topic mapping, indexed once: which topic each tip id belongs to."""

    topics: Mapping[str, Topic]
    topic_of: dict[str, str]
    by_id: dict[str, Tip]


_libraries: dict[int, _Library] = {}


def _library(topics: Mapping[str, Topic]) -> _Library:
    """The index of `topics`, built on first use (the mapping is kept alive with it)."""
    library = _libraries.get(id(topics))
    if library is None or library.topics is not topics:
        by_id = {tip.id: tip for topic in topics.values() for tip in topic.tips}
        library = _Library(topics, {tip.id: tip.topic_id for tip in by_id.values()}, by_id)
        if len(_libraries) >= 16:
            _libraries.clear()
        _libraries[id(topics)] = library
    return library


_NONE: Counter[str | None] = Counter()
_Group = tuple[str, float, int, Sequence[Tip]]


def _seen_round(
    topic_id: str,
    weight: float,
    tips: Sequence[Tip],
    retired_ids: frozenset[str],
    last_shown: str | None,
    shown: Callable[[str, int], int],
) -> _Group:
    """A topic whose every eligible tip has been shown: its fewest showings and those tips
    (none when nothing but the tip just shown is left)."""
    low = -1
    ready: list[Tip] = []
    for tip in tips:
        tip_id = tip.id
        if tip_id in retired_ids or tip_id == last_shown:
            continue
        count = shown(tip_id, 0)
        if count < low or low < 0:
            low, ready = count, [tip]
        elif count == low:
            ready.append(tip)
    return topic_id, weight, low, ready


def choose_tip(
    topics: Mapping[str, Topic],
    history: TipHistory,
    rng: random.Random,
    *,
    only_topic: str | None = None,
) -> Tip | None:
    """The next tip to show, or None when every tip in scope is retired or the topic is unknown."""
    if only_topic is None:
        scope = list(topics.items())
    elif only_topic in topics:
        scope = [(only_topic, topics[only_topic])]
    else:
        return None
    library = _library(topics)
    topic_of = library.topic_of.get
    shown_ids: list[str] = list(history.seen)
    counts = Counter(shown_ids)
    shown = counts.get
    last_shown = shown_ids[-1] if shown_ids else None
    retired_ids, helpful_ids, focus = history.not_for_me, history.helpful, history.focus_topics
    # Topics nobody has touched (no tip seen, retired or rated) are at their defaults: every
    # tip unseen, weight by focus alone. Only the touched ones need a look at each tip.
    touched = {topic_of(tip_id) for tip_id in counts}
    touched.update(map(topic_of, retired_ids))
    touched.update(map(topic_of, helpful_ids))
    retired_in = Counter(map(topic_of, retired_ids)) if retired_ids else _NONE
    helpful_in = (
        Counter(topic_of(tip_id) for tip_id in helpful_ids if tip_id not in retired_ids)
        if helpful_ids
        else _NONE
    )
    held_back: Tip | None = None
    if last_shown is not None and last_shown not in retired_ids:
        candidate = library.by_id.get(last_shown)
        if candidate is not None and only_topic in (None, candidate.topic_id):
            held_back = candidate
    # Per topic with an eligible tip: its weight, its fewest showings, and its tips at that count
    # (when that count is 0, only the first of them matters, so it may be the only one listed).
    groups: list[_Group] = []
    for topic_id, topic in scope:
        if topic_id not in touched:
            if topic.tips:
                groups.append(
                    (topic_id, FOCUS_WEIGHT if topic_id in focus else BASE_WEIGHT, 0, topic.tips)
                )
            continue
        weight = _weight(topic_id in focus, retired_in[topic_id], helpful_in[topic_id])
        for tip in topic.tips:
            if tip.id not in counts and tip.id not in retired_ids:
                groups.append((topic_id, weight, 0, (tip,)))
                break
        else:
            groups.append(_seen_round(topic_id, weight, topic.tips, retired_ids, last_shown, shown))
    groups = [group for group in groups if group[3]]
    if not groups:
        return held_back  # the tip just shown, if it is the only eligible one

    fewest = min(low for _, _, low, _ in groups)
    due = [group for group in groups if group[2] == fewest]
    if only_topic is None and len(due) > 1:
        due = [group for group in due if group[0] != history.last_daily_topic]
    if len(due) == 1:
        chosen = due[0][3]
    else:
        chosen = rng.choices(due, weights=[weight for _, weight, _, _ in due])[0][3]
    if fewest == 0 or len(chosen) == 1:
        return chosen[0]
    return _seen_longest_ago(chosen, shown_ids)
