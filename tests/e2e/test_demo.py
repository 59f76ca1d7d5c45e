"""`python -m bot demo`: the offline demo, driven through its stdin like a piped session."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import bot.clock
from bot.clock import Clock

ROOT = Path(__file__).resolve().parent.parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_clock_runs_faster_from_when_it_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    real = [datetime(2025, 1, 6, 12, 0, tzinfo=UTC)]
    monkeypatch.setattr(bot.clock, "utcnow", lambda: real[0])
    clock = Clock()
    assert clock.speed == 1
    real[0] += timedelta(minutes=1)
    assert clock.now() == datetime(2025, 1, 6, 12, 1, tzinfo=UTC)

    clock.run_at(1440)  # from now on a day per real minute; nothing jumps
    assert clock.now() == datetime(2025, 1, 6, 12, 1, tzinfo=UTC)
    real[0] += timedelta(minutes=1)
    assert clock.now() == datetime(2025, 1, 7, 12, 1, tzinfo=UTC)

    clock.advance(timedelta(hours=1))
    assert clock.now() == datetime(2025, 1, 7, 13, 1, tzinfo=UTC)
    clock.set(datetime(2025, 3, 1, 8, 0, tzinfo=UTC))
    real[0] += timedelta(seconds=5)
    assert clock.now() == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)  # still 1440 times as fast

    clock.run_at(1)
    real[0] += timedelta(seconds=5)
    assert clock.now() == datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)
    for speed in (0, -2, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive"):
            clock.run_at(speed)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2025, 1, 1))


class DemoSession:
    """The demo as a subprocess: type lines into it, wait for what it prints."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.mark = 0

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.mark = len(self.lines)
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:  # noqa: ASYNC109
        """The first line printed since the last send that matches `pattern`."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        index = self.mark
        while True:
            for index in range(index, len(self.lines)):  # noqa: B020 - resumes the scan
                if found := re.search(pattern, self.lines[index]):
                    return found
            index = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout}s:\n" + self.transcript)
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            except TimeoutError:
                raw = None
            if raw is None:
                raise AssertionError(f"no {pattern!r} within {timeout}s:\n" + self.transcript)
            if not raw:
                raise AssertionError(f"the demo ended before {pattern!r}:\n" + self.transcript)
            self.lines.append(raw.decode().rstrip("\n"))

    async def button(self, label: str) -> str:
        """The number the demo printed for the button `label` (since the last send)."""
        found = await self.expect(r"\[(\d+)\] " + re.escape(label))
        return found[1]

    @property
    def transcript(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.e2e
@pytest.mark.slow
async def test_a_piped_demo_session(tmp_path: Path) -> None:
    output = tmp_path / "files"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bot", "demo", "--speed", "1440", "--output", str(output)),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "USER": "Alex"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    demo = DemoSession(process)
    try:
        await demo.expect("nothing leaves this", timeout=30)
        await demo.send("/start")
        await demo.expect(r"^bot> Hello, Alex, welcome to BackCalm\.")

        await demo.send("/timezone Berlin")
        await demo.send("#" + await demo.button("08:00 (suggested)"))
        await demo.expect(r"^bot> \(edited\) ✅ Daily tips are on\.")

        await demo.send("/checkin 6 4 walked")
        await demo.send("#" + await demo.button("✅ I agree"))
        await demo.expect(r"Check-in · 1 of 5")
        await demo.send("/checkin 6 4 walked")
        await demo.expect(r"^bot> ✅ Check-in saved\. Pain 6 · stress 4")

        await demo.send("/trends")
        photo = Path((await demo.expect(r"^bot> \[photo saved: (.+)\]$"))[1])
        assert photo.parent == output.resolve()
        assert (await asyncio.to_thread(photo.read_bytes)).startswith(PNG_SIGNATURE)

        await demo.send("/tip")
        await demo.expect(r"^     \[1\] 👍 Helpful   \[2\] 👎 Not for me$")
        await demo.send("#1")
        await demo.expect(r"^bot> \(pop-up\) Thanks!")

        # The daily tip comes by itself. Unless 08:00 in Berlin already came (the clock runs
        # a day a minute), move it to an hour from now on the bot's clock: 2.5 s from now.
        if not any(line.startswith("⏰") for line in demo.lines):
            before = len(demo.lines)
            await demo.send(":time")
            local = await demo.expect(r"your time: \w+ (\d\d):(\d\d) \(Europe/Berlin\)")
            soon = datetime(2000, 1, 1, int(local[1]), int(local[2])) + timedelta(hours=1)
            await demo.send(f"/time {soon:%H:%M}")
            demo.mark = before  # the tip may have come while :time answered
            await demo.expect(r"^⏰ .* in Europe/Berlin$", timeout=15)
        demo.mark = next(i for i, line in enumerate(demo.lines) if line.startswith("⏰"))
        await demo.expect(r"^     \[1\] 👍 Helpful")  # the scheduled tip, under the ⏰ line

        await demo.send(":quit")
        assert process.stdin is not None
        process.stdin.close()
        rest, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode(), stderr.decode()
    transcript = demo.transcript + rest.decode()
    for line in ("you> /start", "you> #1", "you> :quit"):
        assert line in transcript
    assert (output / "demo.log").exists()
