"""Choosing the next tip: rounds without repeats, retirement, weights and topic variety."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.content import Tip, Topic, load_content
from bot.services.tip_history import rng_for
from bot.services.tips import TipHistory, choose_tip, topic_weights

CONTENT = Path(__file__).resolve().parents[2] / "content"


def make_topics(**sizes: int) -> dict[str, Topic]:
    """Topics named by the keywords, with tips `<topic>-01` … in file order."""
    return {
        name: Topic(
            id=name,
            order=order,
            title=name,
            emoji="*",
            summary="",
            overview="",
            keywords=(),
            tips=tuple(
                Tip(f"{name}-{n:02d}", name, "title", "text", "action", ("source",))
                for n in range(1, size + 1)
            ),
        )
        for order, (name, size) in enumerate(sizes.items())
    }


def shown(*tip_ids: str) -> list[str]:
    return list(tip_ids)


def walk(
    topics: Mapping[str, Topic],
    steps: int,
    *,
    history: TipHistory | None = None,
    only_topic: str | None = None,
    seed: int = 0,
) -> list[str]:
    """Ids of `steps` picks in a row, each fed back into the history as the caller would."""
    history = history or TipHistory()
    seen = list(history.seen)
    last_daily = history.last_daily_topic
    rng = random.Random(seed)
    picks: list[str] = []
    for _ in range(steps):
        current = TipHistory(
            seen, history.not_for_me, history.helpful, history.focus_topics, last_daily
        )
        tip = choose_tip(topics, current, rng, only_topic=only_topic)
        assert tip is not None
        picks.append(tip.id)
        seen.append(tip.id)
        if only_topic is None:
            last_daily = tip.topic_id
    return picks


# ---------------------------------------------------------------- rule 1: rounds


@pytest.mark.parametrize("seed", range(5))
def test_no_tip_comes_twice_before_every_tip_has_been_seen(seed: int) -> None:
    topics = make_topics(aa=3, bb=4, cc=2)
    picks = walk(topics, 9, seed=seed)
    assert sorted(picks) == sorted(tip.id for t in topics.values() for tip in t.tips)


def test_a_topic_goes_through_all_its_tips_before_repeating() -> None:
    topics = make_topics(aa=4, bb=3)
    history = TipHistory(seen=shown("bb-01", "aa-03", "bb-02"))
    picks = walk(topics, 6, history=history, only_topic="aa")
    assert picks[:3] == ["aa-01", "aa-02", "aa-04"]
    assert picks[3:] == ["aa-03", "aa-01", "aa-02"]


def test_tips_shown_by_a_topic_command_count_for_the_daily_tip() -> None:
    topics = make_topics(aa=2, bb=1)
    picks = walk(topics, 2, history=TipHistory(seen=shown("aa-01")))
    assert sorted(picks) == ["aa-02", "bb-01"]


def test_unseen_tips_come_in_file_order() -> None:
    topics = make_topics(aa=4)
    picks = walk(topics, 3, history=TipHistory(seen=shown("aa-02")), only_topic="aa")
    assert picks == ["aa-01", "aa-03", "aa-04"]


def test_a_new_round_starts_with_the_tips_seen_longest_ago() -> None:
    topics = make_topics(aa=3)
    history = TipHistory(seen=shown("aa-02", "aa-03", "aa-01"))
    assert walk(topics, 3, history=history, only_topic="aa") == ["aa-02", "aa-03", "aa-01"]


def test_a_tip_shown_more_often_waits_for_the_others() -> None:
    topics = make_topics(aa=3)
    history = TipHistory(seen=shown("aa-01", "aa-02", "aa-03", "aa-01", "aa-01", "aa-02"))
    assert walk(topics, 1, history=history, only_topic="aa") == ["aa-03"]


@pytest.mark.parametrize("seed", range(20))
def test_a_new_round_does_not_start_with_the_tip_just_shown(seed: int) -> None:
    # Both tips have been seen once, so both are due; only the rule keeps aa-01 out.
    topics = make_topics(aa=1, bb=1)
    history = TipHistory(seen=shown("bb-01", "aa-01"), focus_topics=frozenset({"aa"}))
    assert walk(topics, 1, history=history, seed=seed) == ["bb-01"]


def test_the_only_eligible_tip_may_come_again() -> None:
    topics = make_topics(aa=2)
    history = TipHistory(seen=shown("aa-01"), not_for_me=frozenset({"aa-02"}))
    assert walk(topics, 2, history=history, only_topic="aa") == ["aa-01", "aa-01"]


# ---------------------------------------------------------------- rule 2: "Not for me"


def test_a_retired_tip_never_comes_back_in_any_round() -> None:
    topics = make_topics(aa=3, bb=2)
    history = TipHistory(not_for_me=frozenset({"aa-02"}))
    picks = walk(topics, 16, history=history) + walk(topics, 8, history=history, only_topic="aa")
    assert "aa-02" not in picks
    assert set(picks) == {"aa-01", "aa-03", "bb-01", "bb-02"}


def test_a_fully_retired_topic_gives_nothing() -> None:
    topics = make_topics(aa=2, bb=2)
    history = TipHistory(not_for_me=frozenset({"aa-01", "aa-02"}))
    assert choose_tip(topics, history, random.Random(0), only_topic="aa") is None
    assert set(walk(topics, 6, history=history)) == {"bb-01", "bb-02"}


def test_nothing_left_gives_none() -> None:
    topics = make_topics(aa=1, bb=2)
    history = TipHistory(
        seen=shown("aa-01", "bb-01"), not_for_me=frozenset({"aa-01", "bb-01", "bb-02"})
    )
    assert choose_tip(topics, history, random.Random(0)) is None
    assert choose_tip(topics, history, random.Random(0), only_topic="bb") is None


def test_an_unknown_topic_gives_nothing() -> None:
    topics = make_topics(aa=2)
    assert choose_tip(topics, TipHistory(), random.Random(0), only_topic="gone") is None
    assert choose_tip({}, TipHistory(), random.Random(0)) is None


# ---------------------------------------------------------------- rule 3: weights


@pytest.mark.parametrize(
    ("focus", "not_for_me", "helpful", "expected"),
    [
        (False, 0, 0, 1.0),
        (True, 0, 0, 3.0),
        (False, 1, 0, 0.7),
        (False, 2, 0, 0.49),
        (False, 6, 0, 0.7**6),
        (False, 7, 0, 0.1),  # 0.7**7 ≈ 0.082 is below the floor
        (True, 9, 0, 0.3),
        (False, 0, 1, 1.1),
        (False, 0, 4, 1.1**4),
        (False, 0, 5, 1.5),  # 1.1**5 ≈ 1.61 is above the cap
        (True, 2, 3, 3.0 * 0.49 * 1.1**3),
        (True, 9, 9, 0.3 * 1.5),
    ],
)
def test_topic_weight(focus: bool, not_for_me: int, helpful: int, expected: float) -> None:
    topics = make_topics(aa=20, bb=3)
    ids = [tip.id for tip in topics["aa"].tips]
    history = TipHistory(
        not_for_me=frozenset(ids[:not_for_me]),
        helpful=frozenset(ids[10 : 10 + helpful]),
        focus_topics=frozenset({"aa"} if focus else ()),
    )
    assert topic_weights(topics, history) == {"aa": pytest.approx(expected), "bb": 1.0}


def test_feedback_only_weighs_on_its_own_topic() -> None:
    topics = make_topics(aa=3, bb=3)
    history = TipHistory(
        not_for_me=frozenset({"bb-01", "bb-02", "gone-01"}),
        helpful=frozenset({"bb-01", "bb-03", "gone-02"}),  # bb-01 is both: "Not for me" wins
    )
    assert topic_weights(topics, history) == {
        "aa": 1.0,
        "bb": pytest.approx(0.49 * 1.1),
    }


@pytest.mark.parametrize(
    ("history", "share_of_aa"),
    [
        (TipHistory(focus_topics=frozenset({"aa"})), 3.0 / 4.0),
        (TipHistory(not_for_me=frozenset({"aa-01", "aa-02"})), 0.49 / 1.49),
        (TipHistory(helpful=frozenset({"aa-01", "aa-02", "aa-03"})), 1.331 / 2.331),
    ],
)
def test_topics_are_drawn_by_weight(history: TipHistory, share_of_aa: float) -> None:
    topics = make_topics(aa=5, bb=5)
    rng = random.Random(11)
    draws = 2000
    picks = [choose_tip(topics, history, rng) for _ in range(draws)]
    share = sum(tip is not None and tip.topic_id == "aa" for tip in picks) / draws
    assert share == pytest.approx(share_of_aa, abs=0.05)


# ---------------------------------------------------------------- rule 4: variety


@pytest.mark.parametrize("seed", range(30))
def test_yesterdays_topic_is_left_out_when_another_has_a_fresh_tip(seed: int) -> None:
    topics = make_topics(aa=3, bb=3, cc=3)
    history = TipHistory(focus_topics=frozenset({"aa"}), last_daily_topic="aa")
    tip = choose_tip(topics, history, random.Random(seed))
    assert tip is not None
    assert tip.topic_id != "aa"


def test_yesterdays_topic_comes_again_rather_than_a_repeated_tip() -> None:
    topics = make_topics(aa=2, bb=1)
    history = TipHistory(seen=shown("bb-01", "aa-01"), last_daily_topic="aa")
    assert walk(topics, 1, history=history) == ["aa-02"]


def test_topic_requests_ignore_yesterdays_topic() -> None:
    topics = make_topics(aa=2, bb=2)
    history = TipHistory(last_daily_topic="aa")
    assert walk(topics, 2, history=history, only_topic="aa") == ["aa-01", "aa-02"]


# ---------------------------------------------------------------- rule 5: selection


def test_picks_are_deterministic_for_a_seeded_rng() -> None:
    topics = make_topics(aa=4, bb=4, cc=4, dd=4)
    history = TipHistory(focus_topics=frozenset({"bb"}))
    first = walk(topics, 40, history=history, seed=99)
    assert first == walk(topics, 40, history=history, seed=99)
    assert first != walk(topics, 40, history=history, seed=100)


@pytest.mark.parametrize("seed", range(10))
def test_the_drawn_topic_gives_its_first_unseen_tip(seed: int) -> None:
    topics = make_topics(aa=3, bb=3, cc=3)
    history = TipHistory(seen=shown("aa-01", "bb-02"))
    tip = choose_tip(topics, history, random.Random(seed))
    assert tip is not None
    assert tip.id in {"aa-02", "bb-01", "cc-01"}


# ---------------------------------------------------------------- properties

FEEDBACK = st.sampled_from([None, None, "helpful", "not_for_me"])


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    mode=st.sampled_from(["daily", "topic", "mixed"]),
    focus=st.sets(st.integers(0, 3)),
    calls=st.lists(st.tuples(st.integers(0, 3), st.booleans(), FEEDBACK), max_size=40),
    seed=st.integers(0, 2**32),
)
def test_property_rounds_retirement_and_variety(
    sizes: list[int],
    mode: str,
    focus: set[int],
    calls: list[tuple[int, bool, str | None]],
    seed: int,
) -> None:
    names = ["aa", "bb", "cc", "dd"][: len(sizes)]
    topics = make_topics(**dict(zip(names, sizes, strict=True)))
    fixed_topic = names[calls[0][0] % len(names)] if calls else names[0]
    rng = random.Random(seed)
    seen: list[str] = []
    not_for_me: set[str] = set()
    helpful: set[str] = set()
    last_daily: str | None = None
    this_round: set[str] = set()  # for a single scope: tips shown since the round began
    for pick_topic, ask_topic, feedback in calls:
        if mode == "daily" or (mode == "mixed" and not ask_topic):
            only_topic = None
        else:
            only_topic = fixed_topic if mode == "topic" else names[pick_topic % len(names)]
        history = TipHistory(
            seen=list(seen),
            not_for_me=frozenset(not_for_me),
            helpful=frozenset(helpful),
            focus_topics=frozenset(names[i] for i in focus if i < len(names)),
            last_daily_topic=last_daily,
        )
        tip = choose_tip(topics, history, rng, only_topic=only_topic)
        in_scope = [topics[only_topic]] if only_topic else list(topics.values())
        eligible = {t.id: t for topic in in_scope for t in topic.tips if t.id not in not_for_me}
        if not eligible:
            assert tip is None
            continue
        assert tip is not None
        assert tip.id in eligible  # in scope, and retired tips never appear

        counts = Counter(seen)
        last_shown = seen[-1] if seen else None
        if len(eligible) > 1:
            assert tip.id != last_shown
        rivals = [t for t in eligible.values() if t.id not in (tip.id, last_shown)]
        # No tip comes again while another eligible tip has been shown fewer times.
        assert all(counts[tip.id] <= counts[t.id] for t in rivals)
        if only_topic is None and tip.topic_id == last_daily:
            # Yesterday's topic only when every other topic would have meant a repeat.
            assert all(counts[t.id] > counts[tip.id] for t in rivals if t.topic_id != last_daily)
        if mode != "mixed":
            if this_round >= eligible.keys():
                this_round.clear()
            assert tip.id not in this_round
            this_round.add(tip.id)

        seen.append(tip.id)
        if only_topic is None:
            last_daily = tip.topic_id
        if feedback == "not_for_me":
            not_for_me.add(tip.id)
            helpful.discard(tip.id)
        elif feedback == "helpful":
            helpful.add(tip.id)


def test_a_focus_topic_comes_clearly_more_often() -> None:
    # Expected shares with yesterday's topic left out: 0.3 for the focus topic, 0.14 for each of
    # the others. Over 1,000 seeds the focus topic never fell below 1.45x the others' average.
    topics = make_topics(aa=100, bb=100, cc=100, dd=100, ee=100, ff=100)
    history = TipHistory(focus_topics=frozenset({"cc"}))
    picks = walk(topics, 200, history=history, seed=2024)
    per_topic = Counter(tip_id.split("-")[0] for tip_id in picks)
    others = [per_topic[name] for name in topics if name != "cc"]
    assert per_topic["cc"] > max(others)
    assert per_topic["cc"] >= 1.3 * sum(others) / len(others)


# ---------------------------------------------------------------- the real library


def test_daily_tips_cover_the_whole_library_once_per_round() -> None:
    content = load_content(CONTENT)
    every_tip = sorted(content.tips)
    first_two = frozenset(list(content.topics)[:2])
    picks = walk(
        dict(content.topics), 2 * len(every_tip), history=TipHistory(focus_topics=first_two)
    )
    first_round, second_round = picks[: len(every_tip)], picks[len(every_tip) :]
    assert sorted(first_round) == every_tip
    assert sorted(second_round) == every_tip
    assert second_round[0] != first_round[-1]


# ---------------------------------------------------------------- the fast path


def plainly_chosen(
    topics: Mapping[str, Topic],
    history: TipHistory,
    rng: random.Random,
    only_topic: str | None = None,
) -> Tip | None:
    """The rules of bot/services/tips.py read plainly: every tip of every topic in scope."""
    if only_topic is not None and only_topic not in topics:
        return None
    scope = [topics[only_topic]] if only_topic else list(topics.values())
    shown_ids = list(history.seen)
    counts = Counter(shown_ids)
    last_shown = shown_ids[-1] if shown_ids else None
    eligible = [
        (topic, [tip for tip in topic.tips if tip.id not in history.not_for_me]) for topic in scope
    ]
    held_back = next((tip for _, tips in eligible for tip in tips if tip.id == last_shown), None)
    candidates = {
        topic.id: [tip for tip in tips if tip.id != last_shown] for topic, tips in eligible
    }
    candidates = {topic_id: tips for topic_id, tips in candidates.items() if tips}
    if not candidates:
        return held_back
    low = {topic_id: min(counts[tip.id] for tip in tips) for topic_id, tips in candidates.items()}
    fewest = min(low.values())
    due = [topic_id for topic_id in candidates if low[topic_id] == fewest]
    if only_topic is None and len(due) > 1:
        due = [topic_id for topic_id in due if topic_id != history.last_daily_topic]
    weights = topic_weights(topics, history)
    drawn = due[0] if len(due) == 1 else rng.choices(due, weights=[weights[t] for t in due])[0]
    ready = [tip for tip in candidates[drawn] if counts[tip.id] == fewest]
    if fewest == 0 or len(ready) == 1:
        return ready[0]
    last_seen = {tip_id: n for n, tip_id in enumerate(shown_ids)}
    return min(ready, key=lambda tip: last_seen[tip.id])


LIBRARY = load_content(CONTENT)
LIBRARY_TIPS = sorted(LIBRARY.tips)


@settings(max_examples=400, deadline=None)
@given(
    small=st.booleans(),
    seen=st.lists(st.integers(0, 400), max_size=260),
    not_for_me=st.sets(st.integers(0, 400), max_size=40),
    helpful=st.sets(st.integers(0, 400), max_size=40),
    focus=st.sets(st.integers(0, 20), max_size=3),
    last_daily=st.one_of(st.none(), st.integers(0, 20)),
    only=st.one_of(st.none(), st.integers(0, 20)),
    seed=st.integers(0, 2**32),
)
def test_the_fast_path_chooses_what_the_rules_say(
    small: bool,
    seen: list[int],
    not_for_me: set[int],
    helpful: set[int],
    focus: set[int],
    last_daily: int | None,
    only: int | None,
    seed: int,
) -> None:
    """Histories of every shape (several rounds, retired topics, unknown ids) on the real
    library and on a small one: the engine's choice is the one the plain rules give."""
    topics = make_topics(aa=3, bb=1, cc=4, dd=2) if small else dict(LIBRARY.topics)
    ids = [*sorted(tip.id for topic in topics.values() for tip in topic.tips), "gone-01"]
    names = sorted(topics)

    def tip_ids(picks: Iterable[int]) -> list[str]:
        return [ids[n % len(ids)] for n in picks]

    history = TipHistory(
        seen=shown(*tip_ids(seen)),
        not_for_me=frozenset(tip_ids(not_for_me)),
        helpful=frozenset(tip_ids(helpful)),
        focus_topics=frozenset(names[n % len(names)] for n in focus),
        last_daily_topic=None if last_daily is None else names[last_daily % len(names)],
    )
    only_topic = None if only is None else ([*names, "gone"])[only % (len(names) + 1)]
    fast = choose_tip(topics, history, random.Random(seed), only_topic=only_topic)
    plain = plainly_chosen(topics, history, random.Random(seed), only_topic)
    assert fast == plain


# ---------------------------------------------------------------- the daily draw


def test_a_users_daily_draw_is_repeatable_and_differs_by_user_and_day() -> None:
    day = date(2026, 3, 29)
    first = [rng_for(7, day).random() for _ in range(3)]
    assert first == [rng_for(7, day).random() for _ in range(3)]
    assert rng_for(7, day).random() != rng_for(8, day).random()
    assert rng_for(7, day).random() != rng_for(7, day + timedelta(days=1)).random()


def test_daily_draws_spread_evenly_over_topics() -> None:
    """Across 17,000 person-days with equal weights, each of 17 topics gets its fair share."""
    topics = [f"t{n:02d}" for n in range(17)]
    day = date(2026, 1, 1)
    drawn = Counter(
        rng_for(user_id, day + timedelta(days=user_id % 30)).choices(topics, weights=[1.0] * 17)[0]
        for user_id in range(17_000)
    )
    assert set(drawn) == set(topics)
    assert all(800 <= n <= 1_200 for n in drawn.values()), drawn  # expected 1,000 each
    values = [rng_for(n, day).random() for n in range(10_000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0.48 < sum(values) / len(values) < 0.52
    assert rng_for(1, day).getrandbits(100) < 2**100
    assert 1 <= rng_for(1, day).randint(1, 6) <= 6
