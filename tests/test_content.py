"""The content pipeline: the real content loads, and every kind of mistake is reported."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bot.content import Content, ContentError, html_problems, load_content, visible_length

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"


def test_real_content_loads(content: Content) -> None:
    assert content.topics
    assert all(topic.tips for topic in content.topics.values())
    assert content.safety.crisis_lines["default"]
    assert content.commands()[0].command == "start"


def test_every_message_key_the_code_uses_exists(content: Content) -> None:
    used: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        source = path.read_text()
        used |= set(re.findall(r"""\btext\((?:context, )?"([a-z_]+\.[a-z_.]+)\"""", source))
    assert used, "no message keys found: the pattern no longer matches the code"
    missing = sorted(key for key in used if key not in content.messages)
    assert missing == []


def test_content_check_command_passes_on_the_real_content() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "content", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "content OK" in result.stdout


def broken_copy(tmp_path: Path, change: Callable[[Path], None]) -> Path:
    root = tmp_path / "content"
    shutil.copytree(CONTENT, root)
    change(root)
    return root


def edit_yaml(path: Path, edit: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


def first_topic(root: Path) -> Path:
    return sorted((root / "topics").glob("*.yml"))[0]


def _duplicate_tip(root: Path) -> None:
    edit_yaml(first_topic(root), lambda d: d["tips"].append(dict(d["tips"][0])))


def _unknown_source(root: Path) -> None:
    edit_yaml(first_topic(root), lambda d: d["tips"][0].update(sources=["no-such-source"]))


def _foreign_topic_tip(root: Path) -> None:
    edit_yaml(first_topic(root), lambda d: d["tips"][0].update(id="nosuchtopic-01"))


def _long_tip(root: Path) -> None:
    edit_yaml(first_topic(root), lambda d: d["tips"][0].update(text="word " * 200))


def _bad_html(root: Path) -> None:
    edit_yaml(root / "messages.yml", lambda d: d["help"].update(header="<b>What <div>I</div> do"))


def _empty_topic(root: Path) -> None:
    edit_yaml(first_topic(root), lambda d: d.update(tips=[]))


def _long_message(root: Path) -> None:
    edit_yaml(root / "messages.yml", lambda d: d["privacy"].update(text="x" * 4097))


def _broken_placeholder(root: Path) -> None:
    edit_yaml(root / "messages.yml", lambda d: d["privacy"].update(text="Hello {name"))


def _bad_yaml(root: Path) -> None:
    (root / "sources.yml").write_text("sources: [unclosed\n")


@pytest.mark.parametrize(
    ("change", "file_name", "problem"),
    [
        (_duplicate_tip, "topics/", "duplicate tip id"),
        (_unknown_source, "topics/", "source 'no-such-source' is not in sources.yml"),
        (_foreign_topic_tip, "topics/", "id must look like"),
        (_long_tip, "topics/", "'text' is 999 characters, the limit is 600"),
        (_bad_html, "messages.yml", "tag <div> is not supported by Telegram"),
        (_empty_topic, "topics/", "has no tips"),
        (_long_message, "messages.yml", "privacy.text: 4097 characters, limit 4096"),
        (_broken_placeholder, "messages.yml", "broken placeholder"),
        (_bad_yaml, "sources.yml", "not valid YAML"),
    ],
)
def test_mistakes_are_reported_as_file_and_problem(
    tmp_path: Path, change: Callable[[Path], None], file_name: str, problem: str
) -> None:
    root = broken_copy(tmp_path, change)
    with pytest.raises(ContentError) as caught:
        load_content(root)
    matching = [p for p in caught.value.problems if problem in p]
    assert matching, caught.value.problems
    assert all(p.startswith(file_name) for p in matching)


def test_check_command_and_start_up_refuse_broken_content(tmp_path: Path) -> None:
    root = broken_copy(tmp_path, _unknown_source)
    env = {"CONTENT_DIR": str(root), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    check = subprocess.run(
        [sys.executable, "-m", "bot", "content", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert "is not in sources.yml" in check.stdout
    env["TELEGRAM_BOT_TOKEN"] = "123456789:" + "A" * 35
    start = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert start.returncode == 3
    assert "is not in sources.yml" in start.stderr
    assert "Traceback" not in start.stderr


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("<b>bold</b> and <i>italic</i> &amp; <a href='https://x.org'>link</a>", None),
        ("<b>open", "unclosed <b>"),
        ("<b><i>crossed</b></i>", "unbalanced </b>"),
        ("a < b", "bare '<'"),
        ("fish & chips", "bare '&'"),
        ("<h1>title</h1>", "tag <h1> is not supported"),
        ("<b style='x'>x</b>", "attribute style is not allowed"),
        ("<blockquote expandable>quote</blockquote>", None),
    ],
)
def test_html_subset(html: str, problem: str | None) -> None:
    problems = html_problems(html)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_visible_length_counts_what_telegram_counts() -> None:
    assert visible_length("<b>ab</b>&amp;") == 3
    assert visible_length("😀") == 2
