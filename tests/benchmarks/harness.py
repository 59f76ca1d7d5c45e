"""What every scenario shares: the instrumented fake, child processes, statistics, measures."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeBotAPIServer, UploadedFile

ROOT = Path(__file__).resolve().parent.parent.parent
PYTHON = sys.executable
STOP_TIMEOUT = 20.0


def log(message: str) -> None:
    """Progress on stderr, so that stdout carries only the table."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The fake Bot API, instrumented
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One Bot API call as the fake saw it, with the moment it arrived (time.monotonic())."""

    method: str
    chat_id: int | None
    received: float
    answered: float
    status: int
    text_length: int


class BenchAPI(FakeBotAPI):
    """The fake Bot API plus arrival times, O(1) counters and a memory probe at first poll.

    `RecordedCall.time` is when the fake *answered*; a long-polling getUpdates is answered
    seconds after it arrived, so arrivals are recorded here instead.
    """

    def __init__(self, *, enforce_limits: bool = False) -> None:
        super().__init__(TEST_TOKEN, enforce_limits=enforce_limits)
        self.base_url = ""  # set once served
        self.arrivals: list[Arrival] = []
        self.sent_ok = 0
        self.tracked_chats: range = range(0)  # successful sends to these are counted apart
        self.tracked_ok = 0
        self.watched_pid: int | None = None
        self.first_poll_at: float | None = None
        self.first_poll_rss_kb: int | None = None
        self.first_poll_hwm_kb: int | None = None

    def expect_first_poll(self, pid: int) -> None:
        """Record when the next getUpdates arrives and the resident memory of `pid` then."""
        self.watched_pid = pid
        self.first_poll_at = None
        self.first_poll_rss_kb = None
        self.first_poll_hwm_kb = None

    async def handle(
        self,
        token: str,
        method: str,
        params: Mapping[str, Any],
        files: Mapping[str, UploadedFile],
    ) -> tuple[int, dict[str, Any]]:
        received = time.monotonic()
        if method.lower() == "getupdates" and self.first_poll_at is None:
            self.first_poll_at = received
            if self.watched_pid is not None:
                self.first_poll_rss_kb = read_status_kb(self.watched_pid, "VmRSS")
                self.first_poll_hwm_kb = read_status_kb(self.watched_pid, "VmHWM")
            self._signal.notify()
        status, body = await super().handle(token, method, params, files)
        chat_id = _chat_id(params.get("chat_id"))
        text = params.get("text")
        self.arrivals.append(
            Arrival(
                method=method,
                chat_id=chat_id,
                received=received,
                answered=time.monotonic(),
                status=status,
                text_length=len(text) if isinstance(text, str) else 0,
            )
        )
        if status == 200 and method.lower() == "sendmessage":
            self.sent_ok += 1
            if chat_id is not None and chat_id in self.tracked_chats:
                self.tracked_ok += 1
            self._signal.notify()
        return status, body

    def sends_since(self, mark: int) -> list[Arrival]:
        """Successful sendMessage calls that arrived after `mark` (an index into arrivals)."""
        return [
            a for a in self.arrivals[mark:] if a.method.lower() == "sendmessage" and a.status == 200
        ]


def _chat_id(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


class BenchmarkError(RuntimeError):
    """A scenario could not be measured (a process died, nothing arrived in time ...)."""


@contextlib.asynccontextmanager
async def fake_server(*, enforce_limits: bool = False) -> AsyncIterator[BenchAPI]:
    """A fresh instrumented fake served on 127.0.0.1."""
    api = BenchAPI(enforce_limits=enforce_limits)
    server = FakeBotAPIServer(api)
    await server.start()
    api.base_url = server.base_url
    try:
        yield api
    finally:
        await server.stop()


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------


def read_status_kb(pid: int, field_name: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM ...), or None if unavailable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def bot_env(api: BenchAPI, database: Path, **extra: str) -> dict[str, str]:
    """The environment of a child that talks to `api` and uses the SQLite file `database`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DELIVERY_", "TELEGRAM_", "DATABASE_", "ADMIN_"))
    }
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


@dataclass
class Child:
    """A child process whose output goes to a log file in the scenario's folder."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    spawned_at: float
    _log_file: BinaryIO | None = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchmarkError(
                f"{self.name} exited with {self.process.returncode}; last lines of its log:\n"
                + self.tail()
            )

    async def stop(self, api: BenchAPI | None = None) -> int | None:
        """SIGTERM, then SIGKILL if it does not stop within STOP_TIMEOUT seconds."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            if api is not None:
                api.interrupt_polls()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.process.returncode

    async def wait(self, within: float) -> int:
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=within)
        except TimeoutError:
            await self.stop()
            raise BenchmarkError(f"{self.name} did not finish within {within:.0f} s") from None
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None


def _open_log(folder: Path, name: str) -> tuple[Path, BinaryIO]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.log"
    return path, open(path, "ab")  # closed by Child.stop / Child.wait


async def spawn(name: str, args: Sequence[str], env: Mapping[str, str], folder: Path) -> Child:
    """Start `python <args>` in `folder` (so no `.env` of the repository is read)."""
    log_path, log_file = _open_log(folder, name)
    spawned_at = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        *args,
        cwd=folder,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log_file,
        stderr=log_file,
    )
    return Child(name, process, log_path, spawned_at, log_file)


async def watch(
    child: Child,
    api: BenchAPI,
    predicate: Callable[[], bool],
    within: float,
    what: str,
    *,
    progress: Callable[[], int] | None = None,
    stall: float = 60.0,
) -> None:
    """Wait for `predicate()`; fail fast, with the child's log, if the child dies, if the
    deadline passes, or if `progress()` has not moved for `stall` seconds."""
    deadline = time.monotonic() + within
    last = progress() if progress else 0
    moved_at = time.monotonic()
    while not predicate():
        child.check_alive()
        now = time.monotonic()
        if now >= deadline:
            raise BenchmarkError(f"{what}: not within {within:.0f} s\n{child.tail()}")
        if progress is not None:
            current = progress()
            if current != last:
                last, moved_at = current, now
            elif now - moved_at > stall:
                raise BenchmarkError(
                    f"{what}: no progress for {stall:.0f} s (at {current})\n{child.tail()}"
                )
        with contextlib.suppress(AssertionError):
            await api.wait_for(predicate, timeout=min(1.0, deadline - now))


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def send_rate(sends: Sequence[Arrival]) -> tuple[float, float]:
    """Messages per second over first → last arrival (N / span, as specified), and the span."""
    if len(sends) < 2:
        raise BenchmarkError("fewer than two sends to time")
    span = max(a.received for a in sends) - min(a.received for a in sends)
    return len(sends) / span, span


# --------------------------------------------------------------------------------------------
# Measures and the report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measure:
    """One line of the table: a value, its unit, the issue's target and whether it is met."""

    key: str
    label: str
    value: float
    unit: str
    target: str = "-"
    met: bool | None = None
    zero_ok: bool = False  # a count whose target is zero (429s): 0 is a valid value

    def formatted_value(self) -> str:
        if self.unit in ("count", "users", "msgs"):
            return f"{self.value:,.0f}"
        if self.unit == "x":
            return f"{self.value:.2f}x"
        if abs(self.value) >= 1000:
            return f"{self.value:,.0f} {self.unit}"
        if abs(self.value) >= 100:
            return f"{self.value:.0f} {self.unit}"
        if abs(self.value) >= 10:
            return f"{self.value:.1f} {self.unit}"
        return f"{self.value:.2f} {self.unit}"

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            "zero_ok": self.zero_ok,
        }


def table(measures: Iterable[Measure]) -> str:
    """measure | value | target | met?, aligned for a terminal."""
    rows = [("measure", "value", "target", "met?")]
    for m in measures:
        met = "-" if m.met is None else ("yes" if m.met else "NO")
        rows.append((m.label, m.formatted_value(), m.target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].ljust(widths[3]),
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine_facts() -> dict[str, Any]:
    """What the figures depend on besides the code."""
    import sqlalchemy
    import telegram

    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "python_telegram_bot": telegram.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "load_average_at_start": list(os.getloadavg()),
    }
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/meminfo", encoding="ascii") as meminfo,
    ):
        for line in meminfo:
            if line.startswith(("MemTotal:", "MemAvailable:")):
                name, value = line.split(":")
                facts[name.lower() + "_mb"] = round(int(value.split()[0]) / 1024)
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
    return facts
