"""Bare sends: the bot's own `Bot`, sending N tips with the engine's concurrency, nothing else.

Run as `python -m tests.benchmarks.bare_send --first-id ID --count N --workers W` with the
bot's environment variables. The Application is built exactly as `python -m bot` builds it
(same request pool, same defaults), but nothing is started: no database, no engine, no rate
budget, no polling. W workers share the list of chats and send one tip each, cycling through
the whole tip library so the texts and keyboards look like the daily ones.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator

from bot.app import build_application
from bot.config import load_settings
from bot.content import load_content
from bot.views import tip_view


async def send_all(first_id: int, count: int, workers: int) -> float:
    settings = load_settings()
    content = load_content(settings.content_dir)
    application = build_application(settings, content)
    views = [tip_view(content, tip) for tip in sorted(content.tips.values(), key=lambda t: t.id)]
    bot = application.bot
    numbers: Iterator[int] = iter(range(count))

    async def worker() -> None:
        for n in numbers:  # shared: each number is taken by exactly one worker
            view = views[n % len(views)]
            await bot.send_message(first_id + n, view.text, reply_markup=view.markup)

    async with bot:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first-id", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    seconds = asyncio.run(send_all(args.first_id, args.count, args.workers))
    print(f"bare: sent {args.count} messages in {seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
