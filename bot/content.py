"""Loads `content/` once into frozen, validated objects; also the content linter."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

# libyaml's C loader when available: ten times faster than the pure-Python one.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
BUTTON_TEXT_LIMIT = 64
COMMAND_DESCRIPTION_LIMIT = 256
TELEGRAM_COMMAND_LIMIT = 100
TIP_TITLE_LIMIT = 60
TIP_TEXT_LIMIT = 600
TIP_ACTION_LIMIT = 200
OVERVIEW_LIMIT = 900
SUMMARY_LIMIT = 80
TOPIC_ID = re.compile(r"^[a-z]{2,32}$")
TIP_ID = re.compile(r"^[a-z]{2,32}-\d{2,3}$")
COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")

# Telegram's HTML subset: tag → attributes it accepts.
ALLOWED_TAGS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "b": frozenset(),
        "strong": frozenset(),
        "i": frozenset(),
        "em": frozenset(),
        "u": frozenset(),
        "ins": frozenset(),
        "s": frozenset(),
        "strike": frozenset(),
        "del": frozenset(),
        "tg-spoiler": frozenset(),
        "span": frozenset({"class"}),
        "a": frozenset({"href"}),
        "code": frozenset({"class"}),
        "pre": frozenset(),
        "blockquote": frozenset({"expandable"}),
        "tg-emoji": frozenset({"emoji-id"}),
    }
)
_ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>")


class ContentError(Exception):
    """Content failed validation; `problems` holds `file: problem` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    title: str
    publisher: str
    year: str
    url: str


@dataclass(frozen=True, slots=True)
class Tip:
    id: str
    topic_id: str
    title: str
    text: str
    action: str
    sources: tuple[str, ...]
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    order: int
    title: str
    emoji: str
    summary: str
    overview: str
    keywords: tuple[str, ...]
    tips: tuple[Tip, ...]

    @property
    def label(self) -> str:
        return f"{self.emoji} {self.title}"


@dataclass(frozen=True, slots=True)
class CommandInfo:
    command: str
    description: str


@dataclass(frozen=True, slots=True)
class CommandGroup:
    title: str
    commands: tuple[CommandInfo, ...]


@dataclass(frozen=True, slots=True)
class CrisisLine:
    name: str
    contact: str


@dataclass(frozen=True, slots=True)
class Safety:
    redflags_text: str
    redflag_phrases: tuple[str, ...]
    crisis_phrases: tuple[str, ...]
    crisis_text: str
    crisis_lines: Mapping[str, tuple[CrisisLine, ...]]
    language_countries: Mapping[str, str]
    country_names: Mapping[str, str]


class Messages:
    """UI texts by dotted key; `render` fills `{placeholders}`."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self._texts = MappingProxyType(dict(texts))

    def __contains__(self, key: object) -> bool:
        return key in self._texts

    def keys(self) -> Iterable[str]:
        return self._texts.keys()

    def raw(self, key: str) -> str:
        return self._texts[key]

    def render(self, key: str, /, **values: object) -> str:
        """The text for `key` with its placeholders filled."""
        return self._texts[key].format_map(values)


@dataclass(frozen=True)
class Content:
    """Every user-facing word BackCalm has, validated."""

    messages: Messages
    sources: Mapping[str, Source]
    topics: Mapping[str, Topic]
    command_groups: tuple[CommandGroup, ...]
    safety: Safety
    tips: Mapping[str, Tip] = field(init=False)

    def __post_init__(self) -> None:
        tips = {tip.id: tip for topic in self.topics.values() for tip in topic.tips}
        object.__setattr__(self, "tips", MappingProxyType(tips))

    def text(self, key: str, /, **values: object) -> str:
        return self.messages.render(key, **values)

    def commands(self) -> list[CommandInfo]:
        """Every command in /help order, for setMyCommands."""
        return [cmd for group in self.command_groups for cmd in group.commands]


# ---------------------------------------------------------------- HTML checks


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(html_text: str) -> str:
    """The text Telegram shows for an HTML message (tags removed, entities decoded)."""
    parser = _VisibleText()
    parser.feed(html_text)
    parser.close()
    return "".join(parser.parts)


def visible_length(html_text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units of the visible text."""
    return len(visible_text(html_text).encode("utf-16-le")) // 2


def html_problems(text: str) -> list[str]:
    """Problems that would make Telegram refuse `text` with parse_mode HTML."""
    problems: list[str] = []
    stack: list[str] = []
    position = 0
    for match in re.finditer(r"<|&", text):
        if match.start() < position:
            continue
        if match.group() == "&":
            if not _ENTITY.match(text, match.start()):
                problems.append(f"bare '&' at character {match.start()} (write &amp;)")
            continue
        tag = _TAG.match(text, match.start())
        if tag is None:
            problems.append(f"bare '<' at character {match.start()} (write &lt;)")
            continue
        position = tag.end()
        closing, name, attrs = tag.group(1), tag.group(2).lower(), tag.group(3)
        if name not in ALLOWED_TAGS:
            problems.append(f"tag <{name}> is not supported by Telegram")
            continue
        if closing:
            if not stack or stack[-1] != name:
                problems.append(f"unbalanced </{name}>")
            else:
                stack.pop()
            continue
        for attr in re.findall(r"([a-zA-Z-]+)\s*=", attrs):
            if attr.lower() not in ALLOWED_TAGS[name]:
                problems.append(f"attribute {attr} is not allowed on <{name}>")
        stack.append(name)
    problems.extend(f"unclosed <{name}>" for name in reversed(stack))
    return problems


def plain(text: str) -> str:
    """Escape plain content text for an HTML message."""
    return escape(text, quote=False)


# ---------------------------------------------------------------- loading


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=YAML_LOADER)
    except FileNotFoundError:
        problems.append(f"{path.name}: file is missing")
    except yaml.YAMLError as exc:
        problems.append(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})")
    return None


def _flatten(prefix: str, node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), value)
    else:
        yield prefix, node


def _text_field(
    where: str, data: Mapping[str, Any], key: str, problems: list[str], limit: int | None = None
) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: missing or empty '{key}'")
        return ""
    value = value.strip()
    if limit is not None and len(value) > limit:
        problems.append(f"{where}: '{key}' is {len(value)} characters, the limit is {limit}")
    return value


def _placeholder_problems(where: str, key: str, text: str) -> list[str]:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        return [f"{where}: {key}: broken placeholder ({exc}); write {{{{ and }}}} for braces"]
    return [
        f"{where}: {key}: placeholder {{{name}}} is not a plain name"
        for name in names
        if not name.isidentifier()
    ]


def _load_messages(root: Path, problems: list[str]) -> Messages:
    where = "messages.yml"
    data = _read_yaml(root / where, problems)
    texts: dict[str, str] = {}
    if data is None:
        return Messages(texts)
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping of message keys")
        return Messages(texts)
    for key, value in _flatten("", data):
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {key}: must be non-empty text")
            continue
        text = value.strip()
        problems.extend(f"{where}: {key}: {p}" for p in html_problems(text))
        problems.extend(_placeholder_problems(where, key, text))
        limit = BUTTON_TEXT_LIMIT if key.startswith("buttons.") else MESSAGE_LIMIT
        if visible_length(text) > limit:
            problems.append(f"{where}: {key}: {visible_length(text)} characters, limit {limit}")
        texts[key] = text
    return Messages(texts)


def _load_sources(root: Path, problems: list[str]) -> dict[str, Source]:
    where = "sources.yml"
    data = _read_yaml(root / where, problems)
    sources: dict[str, Source] = {}
    entries = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        if data is not None:
            problems.append(f"{where}: expected a 'sources' list")
        return sources
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"{where}: entry {index + 1} is not a mapping")
            continue
        sid = str(entry.get("id", ""))
        label = f"{where}: {sid or f'entry {index + 1}'}"
        if sid in sources:
            problems.append(f"{where}: duplicate id '{sid}'")
            continue
        title = _text_field(label, entry, "title", problems, 400)
        url = str(entry.get("url") or "")
        if url and not url.startswith("https://"):
            problems.append(f"{label}: url must start with https://")
        sources[sid] = Source(
            id=sid,
            title=title,
            publisher=str(entry.get("publisher") or ""),
            year=str(entry.get("year") or ""),
            url=url,
        )
    return sources


def _str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item).strip() for item in value if str(item).strip())


def _load_tip(
    where: str, topic_id: str, entry: Any, sources: Mapping[str, Source], problems: list[str]
) -> Tip | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: a tip is not a mapping")
        return None
    tip_id = str(entry.get("id", ""))
    label = f"{where}: tip {tip_id or '?'}"
    if not TIP_ID.fullmatch(tip_id) or not tip_id.startswith(f"{topic_id}-"):
        problems.append(f"{label}: id must look like '{topic_id}-01'")
    tip = Tip(
        id=tip_id,
        topic_id=topic_id,
        title=_text_field(label, entry, "title", problems, TIP_TITLE_LIMIT),
        text=_text_field(label, entry, "text", problems, TIP_TEXT_LIMIT),
        action=_text_field(label, entry, "action", problems, TIP_ACTION_LIMIT),
        sources=_str_list(entry.get("sources")),
        tags=_str_list(entry.get("tags")),
    )
    if not tip.sources:
        problems.append(f"{label}: needs at least one source")
    problems.extend(
        f"{label}: source '{sid}' is not in sources.yml"
        for sid in tip.sources
        if sid not in sources
    )
    return tip


def _load_topics(
    root: Path, sources: Mapping[str, Source], problems: list[str]
) -> dict[str, Topic]:
    topics: dict[str, Topic] = {}
    seen_tips: dict[str, str] = {}
    folder = root / "topics"
    files = sorted(folder.glob("*.yml")) if folder.is_dir() else []
    if not files:
        problems.append("topics/: no topic files")
    for path in files:
        where = f"topics/{path.name}"
        data = _read_yaml(path, problems)
        if not isinstance(data, dict):
            if data is not None:
                problems.append(f"{where}: expected a mapping")
            continue
        topic_id = str(data.get("id", ""))
        if not TOPIC_ID.fullmatch(topic_id):
            problems.append(f"{where}: id must be 2-32 lowercase letters")
        if topic_id != path.stem:
            problems.append(f"{where}: id '{topic_id}' must match the file name")
        if topic_id in topics:
            problems.append(f"{where}: duplicate topic id '{topic_id}'")
            continue
        tips: list[Tip] = []
        raw_tips = data.get("tips")
        for entry in raw_tips if isinstance(raw_tips, list) else []:
            tip = _load_tip(where, topic_id, entry, sources, problems)
            if tip is None:
                continue
            if tip.id in seen_tips:
                problems.append(
                    f"{where}: duplicate tip id '{tip.id}' (also in {seen_tips[tip.id]})"
                )
                continue
            seen_tips[tip.id] = where
            tips.append(tip)
        if not tips:
            problems.append(f"{where}: topic '{topic_id}' has no tips")
        order = data.get("order")
        topics[topic_id] = Topic(
            id=topic_id,
            order=order if isinstance(order, int) else 999,
            title=_text_field(where, data, "title", problems, 30),
            emoji=_text_field(where, data, "emoji", problems, 8),
            summary=_text_field(where, data, "summary", problems, SUMMARY_LIMIT),
            overview=_text_field(where, data, "overview", problems, OVERVIEW_LIMIT),
            keywords=tuple(k.lower() for k in _str_list(data.get("keywords"))),
            tips=tuple(tips),
        )
    return dict(sorted(topics.items(), key=lambda item: (item[1].order, item[0])))


def _load_commands(
    root: Path, topics: Mapping[str, Topic], problems: list[str]
) -> tuple[CommandGroup, ...]:
    where = "commands.yml"
    data = _read_yaml(root / where, problems)
    groups: list[CommandGroup] = []
    seen: set[str] = set()
    raw_groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(raw_groups, list):
        if data is not None:
            problems.append(f"{where}: expected a 'groups' list")
        return ()
    for group in raw_groups:
        if not isinstance(group, dict):
            problems.append(f"{where}: a group is not a mapping")
            continue
        title = _text_field(where, group, "title", problems, 64)
        commands: list[CommandInfo] = []
        for entry in group.get("commands") or []:
            if not isinstance(entry, dict):
                problems.append(f"{where}: {title}: a command is not a mapping")
                continue
            name = str(entry.get("command", ""))
            if not COMMAND_NAME.fullmatch(name):
                problems.append(f"{where}: command '{name}' must be 1-32 of a-z, 0-9, _")
            if name in seen:
                problems.append(f"{where}: duplicate command '{name}'")
            seen.add(name)
            description = _text_field(
                f"{where}: {name}", entry, "description", problems, COMMAND_DESCRIPTION_LIMIT
            )
            commands.append(CommandInfo(name, description))
        if group.get("topics") is True:
            # Every topic is a command too (/sleep, /stress, ...), described by its summary.
            for topic in topics.values():
                if topic.id in seen:
                    problems.append(f"topics/{topic.id}.yml: /{topic.id} clashes with commands.yml")
                seen.add(topic.id)
                commands.append(CommandInfo(topic.id, topic.summary))
        groups.append(CommandGroup(title, tuple(commands)))
    return tuple(groups)


def _load_safety(root: Path, problems: list[str]) -> Safety:
    where = "safety.yml"
    data = _read_yaml(root / where, problems)
    data = data if isinstance(data, dict) else {}
    redflags = _text_field(where, data, "redflags", problems)
    crisis_text = _text_field(where, data, "crisis", problems)
    for key, text in (("redflags", redflags), ("crisis", crisis_text)):
        problems.extend(f"{where}: {key}: {p}" for p in html_problems(text))
        if visible_length(text) > MESSAGE_LIMIT:
            problems.append(f"{where}: {key}: longer than {MESSAGE_LIMIT} characters")
    lines: dict[str, tuple[CrisisLine, ...]] = {}
    raw_lines = data.get("crisis_lines")
    for country, entries in (raw_lines if isinstance(raw_lines, dict) else {}).items():
        parsed = tuple(
            CrisisLine(str(e.get("name", "")), str(e.get("contact", "")))
            for e in entries or []
            if isinstance(e, dict)
        )
        if not parsed or any(not line.name or not line.contact for line in parsed):
            problems.append(f"{where}: crisis_lines.{country}: each line needs name and contact")
        lines[str(country)] = parsed
    if "default" not in lines:
        problems.append(f"{where}: crisis_lines needs a 'default' (international) entry")
    languages = data.get("language_countries")
    language_countries = (
        {str(k): str(v) for k, v in languages.items()} if isinstance(languages, dict) else {}
    )
    for language, country in language_countries.items():
        if country not in lines:
            problems.append(f"{where}: language_countries.{language}: no crisis_lines.{country}")
    names = data.get("country_names")
    country_names = {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}
    problems.extend(
        f"{where}: crisis_lines.{code}: no name in country_names"
        for code in lines
        if code != "default" and code not in country_names
    )
    redflag_phrases = tuple(p.lower() for p in _str_list(data.get("redflag_phrases")))
    crisis_phrases = tuple(p.lower() for p in _str_list(data.get("crisis_phrases")))
    if not redflag_phrases:
        problems.append(f"{where}: redflag_phrases is empty")
    if not crisis_phrases:
        problems.append(f"{where}: crisis_phrases is empty")
    return Safety(
        redflags_text=redflags,
        redflag_phrases=redflag_phrases,
        crisis_phrases=crisis_phrases,
        crisis_text=crisis_text,
        crisis_lines=MappingProxyType(lines),
        language_countries=MappingProxyType(language_countries),
        country_names=MappingProxyType(country_names),
    )


def _cross_checks(content: Content, problems: list[str]) -> None:
    if len(content.commands()) > TELEGRAM_COMMAND_LIMIT:
        problems.append(f"commands.yml: more than {TELEGRAM_COMMAND_LIMIT} commands with topics")
    for tip in content.tips.values():
        rendered = render_tip(content, tip)
        if visible_length(rendered) > MESSAGE_LIMIT:
            problems.append(f"topics/{tip.topic_id}.yml: tip {tip.id}: rendered message too long")


def render_tip(content: Content, tip: Tip) -> str:
    """A tip as the HTML message people receive."""
    topic = content.topics[tip.topic_id]
    sources = "; ".join(
        plain(content.sources[s].title) for s in tip.sources if s in content.sources
    )
    return content.text(
        "tip.message",
        topic=plain(topic.label),
        title=plain(tip.title),
        text=plain(tip.text),
        action=plain(tip.action),
        sources=sources,
    )


def load_content(root: Path) -> Content:
    """Read and validate every content file; raise ContentError listing all problems."""
    problems: list[str] = []
    messages = _load_messages(root, problems)
    sources = _load_sources(root, problems)
    topics = _load_topics(root, sources, problems)
    groups = _load_commands(root, topics, problems)
    safety = _load_safety(root, problems)
    content = Content(
        messages=messages,
        sources=MappingProxyType(sources),
        topics=MappingProxyType(topics),
        command_groups=groups,
        safety=safety,
    )
    if "tip.message" in messages:
        _cross_checks(content, problems)
    else:
        problems.append("messages.yml: tip.message is missing")
    if problems:
        raise ContentError(problems)
    return content
