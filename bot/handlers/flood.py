"""Flood control: someone sending too much too fast gets one notice and a short pause."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.handlers.common import Context, runtime

logger = logging.getLogger(__name__)
FLOOD_KEY = "flood"


@dataclass
class FloodGuard:
    """Per-user sliding windows of recent update times, and who is paused until when."""

    limit: int
    window: float
    pause: float
    seen: dict[int, deque[float]] = field(default_factory=dict)
    paused: dict[int, float] = field(default_factory=dict)

    def admit(self, user_id: int, now: float) -> tuple[bool, bool]:
        """(admitted, notify): notify is True only for the update that starts a pause."""
        until = self.paused.get(user_id)
        if until is not None:
            if now < until:
                return False, False
            del self.paused[user_id]
        times = self.seen.setdefault(user_id, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        times.append(now)
        if len(times) > self.limit:
            self.paused[user_id] = now + self.pause
            times.clear()
            return False, True
        if len(self.seen) > 10_000:  # forget quiet users now and then
            for uid in [u for u, t in self.seen.items() if not t or now - t[-1] > self.window]:
                del self.seen[uid]
        return True, False


async def check(update: Update, context: Context) -> None:
    """Runs before every handler; stops processing while the sender is paused."""
    user = update.effective_user
    if user is None:
        return
    rt = runtime(context)
    guard = context.bot_data.get(FLOOD_KEY)
    if not isinstance(guard, FloodGuard):
        settings = rt.settings
        guard = FloodGuard(
            settings.flood_max_updates, settings.flood_window_seconds, settings.flood_pause_seconds
        )
        context.bot_data[FLOOD_KEY] = guard
    admitted, notify = guard.admit(user.id, time.monotonic())
    if admitted:
        return
    if notify:
        logger.info("pausing a user who sent more than %d updates", guard.limit)
        if update.callback_query is not None:
            await update.callback_query.answer(rt.content.text("flood.notice"), show_alert=True)
        elif update.effective_chat is not None and update.effective_chat.type == "private":
            await context.bot.send_message(
                update.effective_chat.id, rt.content.text("flood.notice")
            )
    elif update.callback_query is not None:
        await update.callback_query.answer()
    raise ApplicationHandlerStop
