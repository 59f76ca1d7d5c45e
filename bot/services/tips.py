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

Only tip ids are read from `seen` (they are unique across the library). Cost per call: one
counting pass over `seen` (in C), one pass over the library, and, from the second round on, a
walk back through `seen` that stops once the drawn topic's oldest due tip is known.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from bot.content import Tip, Topic

FOCUS_WEIGHT = 3.0
BASE_WEIGHT = 1.0
NOT_FOR_ME_FACTOR = 0.7
NOT_FOR_ME_FLOOR = 0.1
HELPFUL_FACTOR = 1.1
HELPFUL_CAP = 1.5

_TIP_ID = itemgetter(0)


@dataclass(frozen=True, slots=True)
class TipHistory:
    """What one person has been shown and said about tips; every field is plain data."""

    seen: Sequence[tuple[str, str]] = ()
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


def _seen_longest_ago(tips: list[Tip], shown_ids: list[str]) -> Tip:
    """Of `tips`, all already shown, the one whose latest showing is oldest."""
    pending = {tip.id: tip for tip in tips}
    for tip_id in reversed(shown_ids):
        if len(pending) == 1:
            break
        pending.pop(tip_id, None)
    return next(iter(pending.values()))


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
    shown_ids: list[str] = list(map(_TIP_ID, history.seen))
    shown = Counter(shown_ids).get  # counting a list is faster than counting the map
    last_shown = shown_ids[-1] if shown_ids else None
    retired_ids, helpful_ids = history.not_for_me, history.helpful
    held_back: Tip | None = None
    # Per topic with an eligible tip: its weight, its fewest showings, and its tips at that count.
    groups: list[tuple[str, float, int, list[Tip]]] = []
    for topic_id, topic in scope:
        retired = helpful = 0
        low = -1
        ready: list[Tip] = []
        for tip in topic.tips:
            tip_id = tip.id
            if tip_id in retired_ids:
                retired += 1
                continue
            if tip_id in helpful_ids:
                helpful += 1
            if tip_id == last_shown:
                held_back = tip
                continue
            count = shown(tip_id, 0)
            if count < low or low < 0:
                low, ready = count, [tip]
            elif count == low:
                ready.append(tip)
        if ready:
            weight = _weight(topic_id in history.focus_topics, retired, helpful)
            groups.append((topic_id, weight, low, ready))
    if not groups:
        return held_back  # the tip just shown, if it is the only eligible one

    fewest = min(low for _, _, low, _ in groups)
    due = [group for group in groups if group[2] == fewest]
    if only_topic is None and len(due) > 1:
        due = [group for group in due if group[0] != history.last_daily_topic]
    if len(due) == 1:
        ready = due[0][3]
    else:
        ready = rng.choices(due, weights=[weight for _, weight, _, _ in due])[0][3]
    if fewest == 0 or len(ready) == 1:
        return ready[0]
    return _seen_longest_ago(ready, shown_ids)
