"""Loading tip histories in bulk: what each person saw, in order, and their latest daily tip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import (
    Delivery,
    DeliveryStatus,
    Feedback,
    ScheduleKind,
    TipFeedback,
    TipView,
    User,
)
from bot.services.tip_history import _shown_in_order, load_histories

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def view(user_id: int, tip_id: str, minutes_ago: float) -> TipView:
    return TipView(
        user_id=user_id,
        tip_id=tip_id,
        topic_id=tip_id.split("-")[0],
        shown_at=NOW - timedelta(minutes=minutes_ago),
    )


def daily(user_id: int, tip_id: str | None, days_ago: float, kind: ScheduleKind) -> Delivery:
    due = NOW - timedelta(days=days_ago)
    return Delivery(
        user_id=user_id,
        kind=kind,
        local_date=due.date(),
        due_at=due,
        claimed_at=due,
        status=DeliveryStatus.SENT,
        tip_id=tip_id,
    )


async def test_histories_keep_the_order_of_showing_and_the_latest_daily_topic(
    database_url: str,
) -> None:
    db = create_engine(database_url)
    await migrate.upgrade(db)
    sessions = create_sessionmaker(db)
    async with unit_of_work(sessions) as session:
        session.add_all(User(id=n, chat_id=n) for n in (1, 2, 3))
        await session.flush()
        # Written out of order: the order of showing is by time (then by row for equal times),
        # not the order of the rows.
        session.add_all(
            [
                view(1, "sleep-02", 30),
                view(1, "stress-01", 90),
                view(1, "movement-03", 30),
                view(1, "sleep-02", 2 * 24 * 60),
                view(2, "pacing-01", 5),
            ]
        )
        session.add_all(
            [
                daily(1, "stress-01", 0.5, ScheduleKind.DAILY_TIP),
                daily(1, "sleep-02", 1.5, ScheduleKind.DAILY_TIP),
                daily(2, "pacing-01", 4, ScheduleKind.DAILY_TIP),  # too long ago to matter
                daily(3, "mood-01", 0.9, ScheduleKind.DAILY_TIP),
                daily(3, None, 0.2, ScheduleKind.CHECKIN_REMINDER),  # later, but not a tip
            ]
        )
        session.add(
            TipFeedback(user_id=1, tip_id="stress-01", topic_id="stress", verdict=Feedback.HELPFUL)
        )
    async with sessions() as session:
        histories = await load_histories(session, {1: ("sleep",), 2: (), 3: (), 4: ()}, NOW)
    await db.dispose()

    assert list(histories[1].seen) == ["sleep-02", "stress-01", "sleep-02", "movement-03"]
    assert histories[1].last_daily_topic == "stress"
    assert histories[1].helpful == {"stress-01"}
    assert histories[1].focus_topics == {"sleep"}
    assert list(histories[2].seen) == ["pacing-01"]
    assert histories[2].last_daily_topic is None
    assert histories[3].last_daily_topic == "mood"
    assert list(histories[4].seen) == []
    assert histories[4].last_daily_topic is None


def test_on_sqlite_the_order_comes_from_each_showings_time_not_from_the_database() -> None:
    """group_concat promises no order before SQLite 3.44: the tags put the tips in order."""
    shown = ",".join(
        [
            "2026-06-10 11:30:00.000000|000000000007|sleep-02",
            "2026-06-09 08:00:00.000000|000000000012|stress-01",
            "2026-06-10 11:30:00.000000|000000000003|movement-03",
        ]
    )
    assert _shown_in_order(shown, ordered=False) == ["stress-01", "movement-03", "sleep-02"]
