"""`python -m bot demo`: the real bot, talking to an in-process fake Telegram, in this terminal.

The Application is the production one (same handlers, delivery engine and jobs), polling the
fake Bot API through :class:`FakeRequest`; the database and the data key live in a temporary
folder. A reader thread feeds stdin lines into the event loop, so scheduled messages print as
they arrive while the demo waits for input, and a piped session works like a typed one.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import select
from telegram.request import BaseRequest, RequestData

from bot.app import BotApplication, build_application, get_runtime
from bot.config import ConfigError, Settings, load_settings
from bot.content import ContentError, load_content
from bot.db.models import User
from bot.devtools.fake_bot_api import (
    TEST_TOKEN,
    FakeBotAPI,
    FakeMessage,
    FakeRequest,
    RecordedCall,
)
from bot.logs import quiet_noisy_loggers

if TYPE_CHECKING:
    from telegram._utils.types import ODVInput

USER_ID: Final = 1001
LANGUAGE: Final = "en"
LOCATION: Final = (52.52, 13.405)  # what a location button shares: Berlin
ALLOWED_UPDATES: Final = ["message", "callback_query", "my_chat_member"]
TICK_SECONDS: Final = 0.5
QUIET_SECONDS: Final = 0.2  # the bot counts as done once it made no call for this long
SETTLE_SECONDS: Final = 10.0  # but the demo never waits longer than this for an answer
DRAFT_MINUTES: Final = 30  # how long a guided check-in waits between steps (bot time)

BOT: Final = "bot> "
YOU: Final = "you> "
INDENT: Final = " " * len(BOT)
DELIVERY_TASK_PREFIX: Final = "delivery-worker"
SEND_METHODS: Final = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
EDIT_METHODS: Final = frozenset({"editMessageText", "editMessageCaption", "editMessageReplyMarkup"})

HELP: Final = """\
  /command args   send a command: /start, /timezone Berlin, /checkin 6 4 walked
  other text      send a message
  #N              press button N (of the last message that has buttons)
  #               list those buttons again
  :time           the bot's clock, in UTC and in your time zone
  :speed N        from now on, run the bot's clock N times faster (1 is real time)
  :quit           stop (Ctrl+D and Ctrl+C too)"""


@dataclass(frozen=True)
class Button:
    """One numbered button: what it says, the message it is under, and what pressing does."""

    label: str
    message_id: int
    kind: str  # "callback", "url", "location" or "text"
    value: str = ""
    reply_keyboard: bool = False


def demo_settings(folder: Path) -> Settings:
    """Settings for a throwaway bot: database and key in `folder`, a short delivery tick."""
    return load_settings(
        _env_file=None,
        telegram_bot_token=TEST_TOKEN,
        database_url=f"sqlite+aiosqlite:///{folder / 'demo.db'}",
        data_key_file=folder / "demo.key",
        data_encryption_key=None,
        delivery_tick_seconds=TICK_SECONDS,
        # Late by more than this and a tip is skipped: hours of bot time pass in a second
        # at --speed 1440 while a chart renders, so allow the most there is.
        delivery_catchup_hours=48,
        flood_max_updates=1000,  # a pasted script is not a flood
        log_level="INFO",
        webhook_url=None,
        metrics_port=None,
    )


def configure_demo_logging(log_file: Path) -> None:
    """Everything to `log_file`; only errors reach the terminal, where the chat is."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(log_file, encoding="utf-8")],
        force=True,
    )
    quiet_noisy_loggers()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)


def _image_suffix(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data.startswith(b"GIF8"):
        return ".gif"
    return ".bin"


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._")
    return cleaned[:80] or "file"


def _format_speed(speed: float) -> str:
    return f"{speed:g}×"


def _start_reader(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Read stdin in a daemon thread: lines go to `lines`, then None at end of input.

    It reads the file descriptor itself (os.read), not sys.stdin, so a thread still blocked
    in it when the demo exits holds no lock the interpreter needs at shutdown."""

    def put(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(lines.put_nowait, item)
        except RuntimeError:  # the loop is closed: the demo is over
            return False
        return True

    def read() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        while True:
            try:
                chunk = os.read(0, 65536)
            except OSError:
                chunk = b""
            pending += decoder.decode(chunk, final=not chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                if not put(line.rstrip("\r")):
                    return
            if not chunk:
                if pending:
                    put(pending)
                put(None)
                return

    threading.Thread(target=read, name="demo-stdin", daemon=True).start()


class DemoRequest(FakeRequest):
    """The bot's requests to the fake; notes which messages the delivery engine sent.

    Delivery sends run in the engine's worker tasks ("delivery-worker-N"): a message whose
    send ran there arrived by itself (a daily tip, a weekly summary, a reminder)."""

    def __init__(self, api: FakeBotAPI) -> None:
        super().__init__(api)
        self.scheduled: set[int] = set()
        self.in_flight = 0
        self.on_done: Callable[[], None] | None = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        task = asyncio.current_task()
        if task is None or not task.get_name().startswith(DELIVERY_TASK_PREFIX):
            return await super().do_request(
                url,
                method,
                request_data,
                read_timeout,
                write_timeout,
                connect_timeout,
                pool_timeout,
            )
        self.in_flight += 1
        try:
            status, body = await super().do_request(
                url,
                method,
                request_data,
                read_timeout,
                write_timeout,
                connect_timeout,
                pool_timeout,
            )
            with contextlib.suppress(ValueError):
                result = json.loads(body).get("result")
                if isinstance(result, dict) and isinstance(result.get("message_id"), int):
                    self.scheduled.add(result["message_id"])
            return status, body
        finally:
            self.in_flight -= 1
            if self.on_done is not None:
                self.on_done()


class Demo:
    """One chat between the terminal's user and the bot, printed as plain text."""

    def __init__(
        self,
        app: BotApplication,
        api: FakeBotAPI,
        request: DemoRequest,
        *,
        files: Path,
        first_name: str,
        speed: float,
        out: TextIO,
        interactive: bool,
        width: int = 80,
        keep_files: bool = False,
    ) -> None:
        self.app = app
        self.api = api
        self.request = request
        request.on_done = self._flush
        self.files = files
        self.first_name = first_name
        self.speed = speed
        self.out = out
        self.interactive = interactive
        self.width = width
        self.keep_files = keep_files
        self._cursor = 0  # how many of api.calls were printed
        self._timed = 0  # how many of api.calls were looked at for their time
        self._shown: dict[int, int] = {}  # message id -> edits already printed
        self._bot_messages = 0  # how many bot messages in the chat were printed
        self._saved: dict[int, Path] = {}
        self._rows: list[list[Button]] = []  # the buttons #N presses, as printed
        self._last_call = 0.0  # monotonic time of the bot's last call (getUpdates aside)
        self._prompt_open = False
        self._zone: str | None = None

    # ------------------------------------------------------------ running

    async def run(self) -> int:
        app = self.app
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, lines.put_nowait, None)
        printer: asyncio.Task[None] | None = None
        try:
            await app.initialize()
            if app.post_init is not None:
                await app.post_init(app)
            if app.updater is not None:
                await app.updater.start_polling(
                    poll_interval=0.0, timeout=1, allowed_updates=ALLOWED_UPDATES
                )
            await app.start()
            if self.speed != 1:
                get_runtime(app).clock.run_at(self.speed)
            self._banner()
            await self._settle(since=time.monotonic())
            self._flush()
            printer = asyncio.create_task(self._print_loop(), name="demo-printer")
            _start_reader(loop, lines)
            await self._chat(lines)
        finally:
            if printer is not None:
                printer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await printer
            await self._shutdown()
            self._flush()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
        return 0

    async def _shutdown(self) -> None:
        """Stop the way run_polling does: updater, application, post_stop, shutdown."""
        app = self.app
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        if app.post_stop is not None:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)

    async def _chat(self, lines: asyncio.Queue[str | None]) -> None:
        while True:
            self._prompt()
            line = await lines.get()
            self._prompt_open = False
            if line is None:
                if self.interactive:
                    self._emit([""])
                return
            line = line.strip()
            if not line:
                continue
            if not self.interactive:
                self._emit([YOU + line])
            if line in (":quit", ":q", ":exit"):
                return
            await self._handle(line)

    async def _handle(self, line: str) -> None:
        if line.startswith("#"):
            await self._press(line[1:].strip())
        elif line.startswith(":"):
            await self._demo_command(line[1:].strip())
        elif line.startswith("/") and len(line) > 1:
            command, _, args = line[1:].partition(" ")
            await self._send(
                lambda: self.api.send_command(
                    USER_ID,
                    command,
                    args.strip(),
                    first_name=self.first_name,
                    language_code=LANGUAGE,
                )
            )
        else:
            await self._send(
                lambda: self.api.send_text(
                    USER_ID, line, first_name=self.first_name, language_code=LANGUAGE
                )
            )

    async def _send(self, act: Callable[[], Any]) -> None:
        """Do what the user did, then wait until the bot has answered it."""
        since = time.monotonic()
        act()
        await self._settle(since)
        self._flush()
        await self._refresh_zone()

    # ------------------------------------------------------------ demo commands

    async def _press(self, number: str) -> None:
        if not number:
            self._list_buttons()
            return
        buttons = [b for row in self._rows for b in row]
        if not number.isdigit() or not 1 <= int(number) <= len(buttons):
            self._emit([f"(no button {number}; # lists the buttons)"])
            return
        chosen = buttons[int(number) - 1]
        if chosen.kind == "callback":
            await self._send(
                lambda: self.api.press_button(USER_ID, chosen.message_id, chosen.value)
            )
        elif chosen.kind == "location":
            latitude, longitude = LOCATION
            self._emit([f"(you share a location: Berlin, {latitude}, {longitude})"])
            await self._send(
                lambda: self.api.share_location(
                    USER_ID, latitude, longitude, first_name=self.first_name
                )
            )
        elif chosen.kind == "text":
            await self._send(
                lambda: self.api.send_text(
                    USER_ID, chosen.label, first_name=self.first_name, language_code=LANGUAGE
                )
            )
        elif chosen.kind == "url":
            self._emit([f"(a link: {chosen.value})"])
        else:
            self._emit(["(Telegram would open something here; the demo cannot)"])

    def _list_buttons(self) -> None:
        if not self._rows:
            self._emit(["(no buttons right now)"])
            return
        self._emit([INDENT + line for line in self._numbered(self._rows)])

    async def _demo_command(self, command: str) -> None:
        name, _, argument = command.partition(" ")
        if name == "help":
            self._emit([HELP])
        elif name == "time":
            await self._refresh_zone()
            self._emit([self._clock_line()])
        elif name == "speed":
            try:
                speed = float(argument)
                get_runtime(self.app).clock.run_at(speed)
            except ValueError:
                self._emit(["(:speed takes a positive number, e.g. :speed 1440)"])
                return
            self.speed = speed
            self._emit([f"(the bot's clock now runs at {_format_speed(speed)} real time)"])
        else:
            self._emit([f"(unknown demo command :{name}; :help lists them)"])

    def _clock_line(self) -> str:
        now = get_runtime(self.app).clock.now()
        parts = [f"bot clock: {now:%a %-d %b %Y %H:%M} UTC"]
        if self._zone:
            local = now.astimezone(ZoneInfo(self._zone))
            parts.append(f"your time: {local:%a %H:%M} ({self._zone})")
        else:
            parts.append("your time zone: not set (/timezone)")
        parts.append(f"speed {_format_speed(self.speed)}")
        return " · ".join(parts)

    async def _refresh_zone(self) -> None:
        runtime = get_runtime(self.app)
        async with runtime.sessions() as session:
            zone = await session.scalar(select(User.timezone).where(User.id == USER_ID))
        self._zone = zone

    # ------------------------------------------------------------ waiting

    def _idle(self) -> bool:
        app = self.app
        return (
            not self.api.pending_updates()
            and app.update_queue.empty()
            and app.update_processor.current_concurrent_updates == 0
        )

    async def _settle(self, since: float) -> bool:
        """Wait until the bot is idle and made no call for QUIET_SECONDS (at most a while)."""
        deadline = since + SETTLE_SECONDS
        while time.monotonic() < deadline:
            calls = self.api.calls[self._timed :]
            self._timed += len(calls)
            for call in calls:
                if call.method != "getUpdates":
                    self._last_call = max(self._last_call, call.time)
            quiet = time.monotonic() - max(since, self._last_call)
            if quiet >= QUIET_SECONDS and self._idle():
                return True
            await asyncio.sleep(0.02)
        return False

    async def _print_loop(self) -> None:
        """Print what the bot sends by itself (scheduled messages) as it arrives."""
        while True:
            with contextlib.suppress(AssertionError):  # wait_for's timeout: look again
                await self.api.wait_for(self._printable, timeout=30)
            self._flush()
            await asyncio.sleep(0)

    def _printable(self) -> bool:
        return len(self.api.calls) != self._cursor and not self.request.in_flight

    # ------------------------------------------------------------ printing

    def _new_calls(self) -> list[RecordedCall]:
        calls = self.api.calls[self._cursor :]
        self._cursor += len(calls)
        return calls

    def _flush(self) -> None:
        """Print every bot message, edit and pop-up since the last flush, in order."""
        if self.request.in_flight:  # a scheduled send is under way: print it once it is known
            return
        for call in self._new_calls():
            if not call.ok or call.chat_id not in (None, USER_ID):
                continue
            if call.method in SEND_METHODS:
                new = self.api.sent_messages(USER_ID)[self._bot_messages :]
                self._bot_messages += len(new)
                for message in new:
                    scheduled = message.message_id in self.request.scheduled
                    self._show(message, header=self._arrival_line() if scheduled else None)
            elif call.method in EDIT_METHODS:
                edited = self._message(call.params.get("message_id"))
                if edited is not None and edited.edits > self._shown.get(edited.message_id, 0):
                    markup_only = call.method == "editMessageReplyMarkup"
                    self._show(edited, edited=True, buttons_only=markup_only)
            elif call.method == "answerCallbackQuery" and call.params.get("text"):
                kind = "(alert)" if call.params.get("show_alert") else "(pop-up)"
                self._emit([f"{BOT}{kind} {call.params['text']}"])

    def _message(self, message_id: object) -> FakeMessage | None:
        for message in reversed(self.api.sent_messages(USER_ID)):
            if message.message_id == message_id:
                return message
        return None

    def _arrival_line(self) -> str:
        now = get_runtime(self.app).clock.now()
        zone = self._zone or "UTC"
        local = now.astimezone(ZoneInfo(zone))
        return f"⏰ {local:%a %-d %b, %H:%M} in {zone}"

    def _show(
        self,
        message: FakeMessage,
        *,
        edited: bool = False,
        buttons_only: bool = False,
        header: str | None = None,
    ) -> None:
        """Print a message as its reader sees it: files saved, text, numbered buttons."""
        self._shown[message.message_id] = message.edits
        marker = "(edited) " if edited else ""
        body: list[str] = []
        if buttons_only:
            title = next(iter((message.plain_text or "").splitlines()), "")[:40]
            marker = f'(edited: the buttons of "{title}")'
        else:
            if message.photo is not None:
                body.append(f"[photo saved: {self._save(message, message.photo, None)}]")
            if message.document is not None:
                path = self._save(message, message.document, message.document_name or "file")
                body.append(f"[document saved: {path}]")
            text = (message.plain_text or "").splitlines()
            body += self._wrap(text, first_offset=0 if body else len(marker))
        body += self._take_buttons(message)
        first, *rest = body or [""]
        if buttons_only:
            first, rest = "", body
        lines = [f"{BOT}{marker}{first}".rstrip(), *(f"{INDENT}{line}".rstrip() for line in rest)]
        self._emit([header, *lines] if header else lines)

    def _wrap(self, lines: list[str], first_offset: int) -> list[str]:
        """Long lines folded to the terminal's width, as a Telegram client would."""
        width = max(40, min(self.width, 100) - len(INDENT))
        folded: list[str] = []
        for index, line in enumerate(lines):
            lead = " " * first_offset if index == 0 else ""
            if len(lead) + len(line) <= width:
                folded.append(line)
                continue
            parts = textwrap.wrap(
                line, width, initial_indent=lead, break_long_words=False, break_on_hyphens=False
            )
            if parts:
                parts[0] = parts[0].removeprefix(lead)
            folded += parts or [""]
        return folded

    def _take_buttons(self, message: FakeMessage) -> list[str]:
        """The message's buttons as numbered rows; they become the ones #N presses."""
        markup = message.reply_markup or {}
        rows: list[list[Button]] = []
        for row in markup.get("inline_keyboard") or []:
            rows.append([self._inline_button(message, b) for b in row if isinstance(b, dict)])
        for row in markup.get("keyboard") or []:
            rows.append([self._reply_button(message, b) for b in row])
        rows = [row for row in rows if row]
        current = self._rows[0][0] if self._rows else None
        if rows:
            self._rows = rows
        elif current is not None and (
            current.message_id == message.message_id
            or (markup.get("remove_keyboard") and current.reply_keyboard)
        ):
            self._rows = []
        return self._numbered(rows)

    @staticmethod
    def _numbered(rows: list[list[Button]]) -> list[str]:
        """One line per row: "[1] 👍 Helpful   [2] 👎 Not for me"; numbers run on."""
        lines, number = [], 0
        for row in rows:
            lines.append("   ".join(f"[{number + n}] {b.label}" for n, b in enumerate(row, 1)))
            number += len(row)
        return lines

    @staticmethod
    def _inline_button(message: FakeMessage, data: dict[str, Any]) -> Button:
        label = str(data.get("text", ""))
        if "callback_data" in data:
            return Button(label, message.message_id, "callback", str(data["callback_data"]))
        if "url" in data:
            return Button(f"{label} ↗", message.message_id, "url", str(data["url"]))
        return Button(label, message.message_id, "other")

    @staticmethod
    def _reply_button(message: FakeMessage, data: object) -> Button:
        if isinstance(data, str):
            return Button(data, message.message_id, "text", reply_keyboard=True)
        fields = data if isinstance(data, dict) else {}
        label = str(fields.get("text", ""))
        kind = "location" if fields.get("request_location") else "text"
        return Button(label, message.message_id, kind, reply_keyboard=True)

    def _save(self, message: FakeMessage, data: bytes, file_name: str | None) -> str:
        saved = self._saved.get(message.message_id)
        if saved is None:
            stem = f"{message.message_id:03d}"
            name = f"{stem}-photo{_image_suffix(data)}" if file_name is None else file_name
            saved = self.files / (name if file_name is None else f"{stem}-{_safe_name(name)}")
            try:
                saved.write_bytes(data)
            except OSError as exc:
                return f"not saved, {exc.strerror or exc}"
            self._saved[message.message_id] = saved
        return str(saved)

    def _prompt(self) -> None:
        if self.interactive and not self._prompt_open:
            self.out.write(YOU)
            self.out.flush()
            self._prompt_open = True

    def _emit(self, lines: list[str]) -> None:
        reprompt = self._prompt_open
        if reprompt:
            self.out.write("\n")
            self._prompt_open = False
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        if reprompt:
            self._prompt()

    def _banner(self) -> None:
        lines = [
            "BackCalm offline demo: the real bot (its handlers, database and scheduler) talking",
            "to a fake Telegram inside this process. No token, no network: nothing leaves this",
            "machine, and the demo's database is deleted when you quit.",
            f"You are user {USER_ID}, first name {self.first_name}.",
            f"Photos and files the bot sends go to {self.files}",
        ]
        if not self.keep_files:
            lines.append("(deleted when you quit too; --output DIR keeps them)")
        if self.speed != 1:
            lines.append(f"The bot's clock runs at {_format_speed(self.speed)} real time.")
            if DRAFT_MINUTES * 60 / self.speed < 120:
                lines.append("Guided check-ins expire fast at this speed: try /checkin 6 4.")
        lines += [
            "Try /start, /subscribe, /checkin. #N presses button N, # lists them, :time shows",
            "the bot's clock, :help the rest, :quit (or Ctrl+D) ends.",
            "",
        ]
        self._emit(lines)


def main(speed: float = 1.0, output: Path | None = None) -> int:
    """Run the demo; 0 when the user quits, 2 for bad options, 3 for broken content."""
    if not math.isfinite(speed) or speed <= 0:
        print("--speed: use a positive number, e.g. 1440 (a day per minute)", file=sys.stderr)
        return 2
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="replace", line_buffering=True)
    with tempfile.TemporaryDirectory(prefix="backcalm-demo-") as temporary:
        folder = Path(temporary)
        files = output.expanduser().resolve() if output is not None else folder / "files"
        try:
            files.mkdir(parents=True, exist_ok=True)
            settings = demo_settings(folder)
            content = load_content(settings.content_dir)
        except OSError as exc:
            print(f"--output: cannot use {files} ({exc.strerror or exc})", file=sys.stderr)
            return 2
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        except ContentError as exc:
            print("content/ has problems:\n" + str(exc), file=sys.stderr)
            return 3
        # The log stays with the files when they are kept, and goes with the database if not.
        configure_demo_logging((files if output is not None else folder) / "demo.log")
        api = FakeBotAPI(TEST_TOKEN, bot_username="BackCalmDemoBot")
        request = DemoRequest(api)
        app = build_application(
            settings, content, request=request, get_updates_request=FakeRequest(api)
        )
        demo = Demo(
            app,
            api,
            request,
            files=files,
            first_name=(os.environ.get("USER") or "").strip()[:64] or "You",
            speed=speed,
            out=out,
            interactive=sys.stdin is not None and sys.stdin.isatty(),
            width=shutil.get_terminal_size((80, 24)).columns,
            keep_files=output is not None,
        )
        try:
            return asyncio.run(demo.run())
        finally:
            logging.shutdown()
