"""The content lint: every check fails on a crafted problem and passes on the real library."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.content import Content, ContentError, Tip
from bot.content_lint import (
    DUPLICATE_THRESHOLD,
    MIN_TIPS_PER_TOPIC,
    RULES_FILE,
    TIP_READABILITY_FLOOR,
    TOPIC_READABILITY_FLOOR,
    LintReport,
    LintRules,
    check_content,
    flesch_reading_ease,
    jaccard,
    lint,
    lint_content_dir,
    load_rules,
    sentences,
    shingles,
    similar_pairs,
    syllables,
    tip_readability,
)

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"

# Hard on purpose: long sentences of long words (Flesch Reading Ease far below 0).
HARD_TEXT = (
    "Comprehensive multidisciplinary rehabilitation programmes incorporating "
    "individualised biopsychosocial considerations demonstrate considerable "
    "effectiveness regarding functional improvement, particularly concerning "
    "occupational reintegration, psychological resilience and physiological "
    "conditioning amongst individuals experiencing persistent musculoskeletal discomfort."
)


@pytest.fixture(scope="module")
def rules() -> LintRules:
    return load_rules(CONTENT / RULES_FILE)


@pytest.fixture(scope="module")
def report(content: Content, rules: LintRules) -> LintReport:
    return lint(content, rules)


def with_tip(content: Content, tip_id: str, **changes: object) -> Content:
    """`content` with one tip changed (`text=...`, `action=...`, ...)."""
    tip = content.tips[tip_id]
    topic = content.topics[tip.topic_id]
    tips = tuple(replace(t, **changes) if t.id == tip_id else t for t in topic.tips)  # type: ignore[arg-type]
    return replace(content, topics={**content.topics, topic.id: replace(topic, tips=tips)})


def one_topic(content: Content, tip_id: str, **changes: object) -> Content:
    """Only the topic of `tip_id`, with that tip changed: a quick lint for per-topic checks."""
    changed = with_tip(content, tip_id, **changes)
    topic_id = content.tips[tip_id].topic_id
    return replace(changed, topics={topic_id: changed.topics[topic_id]})


def with_extra_tip(content: Content, tip: Tip) -> Content:
    topic = content.topics[tip.topic_id]
    return replace(
        content, topics={**content.topics, topic.id: replace(topic, tips=(*topic.tips, tip))}
    )


def problems_about(report: LintReport, fragment: str) -> list[str]:
    return [problem for problem in report.problems if fragment in problem]


# ---------------------------------------------------------------- the real library


def test_real_library_passes(report: LintReport) -> None:
    assert report.problems == []
    assert report.ok


def test_lint_of_the_real_library_is_fast(content: Content, rules: LintRules) -> None:
    tips = list(content.tips.values())
    started = time.perf_counter()
    similar_pairs(tips)
    pairs_took = time.perf_counter() - started
    started = time.perf_counter()
    lint(content, rules)
    lint_took = time.perf_counter() - started
    assert len(tips) > 200
    assert pairs_took < 0.5, f"all pairs of {len(tips)} tips took {pairs_took:.2f} s"
    assert lint_took < 1.0, f"the whole lint took {lint_took:.2f} s"


def test_summary_lists_every_topic_with_plausible_numbers(
    content: Content, report: LintReport
) -> None:
    summary = report.summary
    assert [t.topic_id for t in summary.topics] == list(content.topics)
    assert len(summary.topics) == 17
    for topic in summary.topics:
        assert topic.tips == len(content.topics[topic.topic_id].tips) >= MIN_TIPS_PER_TOPIC
        assert 150 < topic.average_length <= 600
        assert TOPIC_READABILITY_FLOOR <= topic.average_readability < 120
    assert summary.tips == len(content.tips) == sum(t.tips for t in summary.topics)
    assert summary.sources_listed == len(content.sources)
    assert 0 < summary.sources_used <= summary.sources_listed
    assert min(t.average_length for t in summary.topics) <= summary.average_length
    assert summary.average_length <= max(t.average_length for t in summary.topics)
    assert summary.closest_pair is not None
    assert summary.closest_pair.similarity < DUPLICATE_THRESHOLD

    text = report.format_summary()
    lines = text.splitlines()
    for topic in summary.topics:
        row = next(line for line in lines if line.split()[:1] == [topic.topic_id])
        assert row.split()[1] == str(topic.tips)
        assert row.split()[3] == f"{topic.average_readability:.1f}"
    assert f"{summary.tips} tips" in text
    assert f"{summary.sources_used} of {summary.sources_listed} sources used" in text
    # Aligned: every table row is as wide as the header.
    table = lines[: len(summary.topics) + 4]
    assert len({len(line) for line in table}) == 1, table


# ---------------------------------------------------------------- 1: tips per topic


def test_topic_with_too_few_tips(content: Content, rules: LintRules) -> None:
    topic = content.topics["sleep"]
    short = replace(topic, tips=topic.tips[: MIN_TIPS_PER_TOPIC - 1])
    report = lint(replace(content, topics={**content.topics, "sleep": short}), rules)
    assert report.problems == [
        f"topics/sleep.yml: has {MIN_TIPS_PER_TOPIC - 1} tips, needs at least {MIN_TIPS_PER_TOPIC}"
    ]


# ---------------------------------------------------------------- 2: action and source


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"action": ""}, "topics/work.yml: tip work-03: has no action"),
        ({"action": "   "}, "topics/work.yml: tip work-03: has no action"),
        ({"sources": ()}, "topics/work.yml: tip work-03: has no source"),
        ({"sources": ("made-up",)}, "tip work-03: source 'made-up' is not in sources.yml"),
    ],
)
def test_tip_without_action_or_source(
    content: Content, rules: LintRules, changes: dict[str, object], problem: str
) -> None:
    report = lint(one_topic(content, "work-03", **changes), rules)
    assert problems_about(report, problem), report.problems


# ---------------------------------------------------------------- 3: near-duplicates


def reword(text: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# Four words of sleep-01's 63 swapped for synonyms, spread over the text.
SLEEP_01_SWAPS = {
    "Try to get up": "Aim to get up",
    "poor night": "bad night",
    "sets your body clock": "resets your body clock",
    "Long lie-ins": "Big lie-ins",
}


def test_light_rewording_of_a_real_tip_is_caught(content: Content, rules: LintRules) -> None:
    original = content.tips["sleep-01"]
    copy = replace(
        original, id="stress-99", topic_id="stress", text=reword(original.text, SLEEP_01_SWAPS)
    )
    similarity = jaccard(shingles(original.text), shingles(copy.text))
    assert 0.5 < similarity < 0.9  # measured 0.74: a real rewording, not a copy
    report = lint(with_extra_tip(content, copy), rules)
    assert len(report.problems) == 1
    assert re.fullmatch(
        r"topics/s\w+\.yml: tip s\w+-\d+: text is nearly the same as tip s\w+-\d+ "
        r"\(similarity 0\.\d\d, limit 0\.25\).*",
        report.problems[0],
    ), report.problems
    assert "sleep-01" in report.problems[0]
    assert "stress-99" in report.problems[0]


def test_punctuation_and_case_do_not_hide_a_copy(content: Content, rules: LintRules) -> None:
    original = content.tips["pacing-01"]
    shouted = re.sub(r"[.,]", " !", original.text.upper())
    copy = replace(original, id="pacing-99", text=shouted)
    assert jaccard(shingles(original.text), shingles(copy.text)) == 1.0
    assert problems_about(lint(with_extra_tip(content, copy), rules), "pacing-99")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("mood-07", "care-07"),  # both about counselling and CBT; most shared words (k=1)
        ("mood-07", "mood-08"),  # closest pair inside one topic
        ("stress-01", "learn-05"),  # closest pair in the library
    ],
)
def test_distinct_tips_on_the_same_theme_are_not_flagged(
    content: Content, rules: LintRules, report: LintReport, first: str, second: str
) -> None:
    a, b = content.tips[first], content.tips[second]
    assert jaccard(shingles(a.text), shingles(b.text)) < rules.duplicate_threshold / 3
    assert not problems_about(report, "nearly the same")


def test_shingles_ignore_case_and_punctuation() -> None:
    assert shingles("Slow, easy breathing helps.") == shingles("slow easy BREATHING helps")
    assert shingles("one two", k=3) == frozenset({("one", "two")})
    assert shingles("", k=3) == frozenset()
    assert shingles("a b c d", k=3) == frozenset({("a", "b", "c"), ("b", "c", "d")})


_texts = st.lists(
    st.sampled_from(["ab", "bc", "cd", "de", "ef", "fg"]), min_size=0, max_size=12
).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(_texts, min_size=2, max_size=6), k=st.integers(1, 3))
def test_similar_pairs_agrees_with_plain_jaccard(texts: list[str], k: int) -> None:
    tips = [
        Tip(id=f"t-{i:02d}", topic_id="t", title="", text=t, action="", sources=())
        for i, t in enumerate(texts)
    ]
    found = {(p.first.id, p.second.id): p.similarity for p in similar_pairs(tips, k)}
    for i, first in enumerate(tips):
        for second in tips[i + 1 :]:
            expected = jaccard(shingles(first.text, k), shingles(second.text, k))
            assert found.get((first.id, second.id), 0.0) == pytest.approx(expected)
            assert 0.0 <= expected <= 1.0


# ---------------------------------------------------------------- 4: forbidden claims


@pytest.mark.parametrize(
    ("tip_id", "field", "text", "said", "group"),
    [
        ("sleep-02", "text", "This simple trick will cure your back.", "cure", "promises"),
        ("sleep-02", "title", "Guaranteed better sleep", "Guaranteed", "promises"),
        ("sleep-02", "text", "It gives instant  relief.", "instant  relief", "promises"),
        ("sleep-02", "text", "It works 100% of the time.", "100%", "promises"),
        ("flare-03", "action", "Stay in bed until it settles.", "Stay in bed", "rest"),
        ("flare-03", "text", "A few days of bed\nrest help.", "bed\nrest", "rest"),
        ("work-02", "title", "Sit up straight at your desk", "Sit up straight", "posture"),
        ("work-02", "text", "Bad posture is to blame.", "Bad posture", "posture"),
        ("work-02", "text", "Poor posture causes pain.", "Poor posture", "posture"),
        ("care-11", "text", "Take ibuprofen with food.", "ibuprofen", "medicines"),
        ("care-11", "action", "Take 400mg twice a day.", "mg", "medicines"),
        ("care-11", "action", "Take 400 MG twice a day.", "MG", "medicines"),
        ("care-11", "text", "Ask for a stronger painkiller.", "painkiller", "medicines"),
        ("care-11", "text", "Keep the dose low.", "dose", "medicines"),
        ("care-04", "text", "It sounds like you have sciatica.", "you have sciatica", "diagnosis"),
        ("care-04", "text", "Your doctor can diagnose it.", "diagnose", "diagnosis"),
        ("work-05", "text", "A TENS machine can help at work.", "TENS", "not advised"),
        ("work-05", "action", "Wear a back brace at work.", "back brace", "not advised"),
        ("exercise-04", "text", "Try traction at the gym.", "traction", "not advised"),
        ("care-05", "action", "Ask about ultrasound treatment.", "ultrasound", "not advised"),
        ("care-05", "text", "A belt supports your spine.", "belt", "not advised"),
    ],
)
def test_forbidden_phrase_is_reported(
    content: Content,
    rules: LintRules,
    tip_id: str,
    field: str,
    text: str,
    said: str,
    group: str,
) -> None:
    tip = content.tips[tip_id]
    changed = one_topic(content, tip_id, **{field: f"{getattr(tip, field)} {text}"})
    report = lint(changed, rules)
    topic_file = f"topics/{tip.topic_id}.yml"
    assert report.problems, f"'{said}' was not caught"
    assert all(p.startswith(f"{topic_file}: tip {tip_id}: {field} says ") for p in report.problems)
    assert any(f"says '{said}' ({group}: " in p for p in report.problems), report.problems


def test_forbidden_phrase_in_an_overview(content: Content, rules: LintRules) -> None:
    topic = content.topics["movement"]
    changed = replace(topic, overview=topic.overview + " If it flares, try bed rest.")
    report = lint(replace(content, topics={**content.topics, "movement": changed}), rules)
    assert report.problems == [
        "topics/movement.yml: overview says 'bed rest' (rest: long rest is not advised; "
        "guidelines say stay active (NICE NG59))"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Notice the tension in your shoulders, then let it go.",  # tens
        "Tense and relax your legs.",  # tens
        "It is an obscure feeling, and securely normal.",  # cure
        "Your programme may change.",  # mg inside a word
        "Pay attention to how you feel.",  # tens
        "She belted out a song.",  # belt
        "Rest for a short while, then move again.",  # rest advice is about long rest
        "If you have a fever, use /redflags.",  # "you have" is not a diagnosis
        "Medicines can help some people; ask your doctor.",
    ],
)
def test_harmless_words_are_not_flagged(content: Content, rules: LintRules, text: str) -> None:
    tip = content.tips["sleep-04"]
    report = lint(one_topic(content, "sleep-04", text=f"{tip.text} {text}"), rules)
    assert not problems_about(report, "says"), report.problems


def test_care_may_name_what_guidelines_advise_against_only_while_advising_against(
    content: Content, rules: LintRules
) -> None:
    # care-09 and care-10 do it today, and pass.
    assert "TENS" in content.tips["care-10"].text
    assert lint(one_topic(content, "care-10"), rules).problems == []
    # The same words in care without the warning are flagged ...
    recommending = one_topic(
        content,
        "care-10",
        title="Try a machine treatment",
        text="Some clinics offer TENS. Many people find it soothing for their back.",
    )
    assert problems_about(lint(recommending, rules), "tip care-10: text says 'TENS'")
    # ... and another topic may not name them even while advising against them.
    tip = content.tips["work-05"]
    warning = one_topic(content, "work-05", text=tip.text + " Guidelines advise against TENS.")
    assert problems_about(lint(warning, rules), "tip work-05: text says 'TENS'")


def test_rules_file_lists_every_group_from_the_brief(rules: LintRules) -> None:
    phrases = {p.phrase: p for p in rules.phrases}
    for phrase in (
        "cure", "guaranteed", "miracle", "instant relief", "100%", "permanently fix",
        "bed rest", "stay in bed", "rest completely",
        "bad posture", "correct posture", "perfect posture", "good posture", "sit up straight",
        "ibuprofen", "paracetamol", "acetaminophen", "naproxen", "codeine", "tramadol",
        "opioid", "opioids", "painkillers", "muscle relaxant", "gabapentin", "pregabalin",
        "diclofenac", "aspirin", "dose", "dosage", "mg",
        "diagnose", "diagnosis",
        "tens", "traction", "corset", "belt", "orthotics", "ultrasound",
    ):  # fmt: skip
        assert phrase in phrases, phrase
        assert phrases[phrase].reason
    assert phrases["tens"].allowed_topics == {"care"}
    assert phrases["cure"].allowed_topics == frozenset()
    assert "you have" not in phrases  # 25 harmless uses in the library


@pytest.mark.parametrize(
    ("rules_text", "problem"),
    [
        (None, "forbidden.yml: file is missing"),
        ("groups: [unclosed\n", "forbidden.yml: not valid YAML"),
        ("groups: []\n", "forbidden.yml: expected a non-empty 'groups' list"),
        ("groups:\n  - name: x\n    phrases: [cure]\n", "forbidden.yml: x: missing or empty"),
        ("groups:\n  - name: x\n    reason: r\n", "forbidden.yml: x: 'phrases' must be"),
        (
            "groups:\n  - name: x\n    reason: r\n    phrases: [cure, Cure]\n",
            "forbidden.yml: x: 'cure' is listed twice",
        ),
    ],
)
def test_bad_rules_file(tmp_path: Path, rules_text: str | None, problem: str) -> None:
    path = tmp_path / RULES_FILE
    if rules_text is not None:
        path.write_text(rules_text)
    with pytest.raises(ContentError) as caught:
        load_rules(path)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_a_phrase_can_carry_its_own_reason(tmp_path: Path) -> None:
    path = tmp_path / RULES_FILE
    path.write_text(
        "groups:\n  - name: x\n    reason: group reason\n"
        "    phrases: [cure, {phrase: heal fully, reason: own reason}]\n"
    )
    reasons = {p.phrase: p.reason for p in load_rules(path).phrases}
    assert reasons == {"cure": "group reason", "heal fully": "own reason"}


# ---------------------------------------------------------------- 5: readability


@pytest.mark.parametrize(
    ("word", "count"),
    [
        ("cat", 1),
        ("the", 1),
        ("make", 1),  # silent e
        ("breathe", 1),
        ("table", 2),  # consonant + le
        ("gentle", 2),
        ("people", 2),
        ("whole", 1),  # vowel + le: silent e
        ("walked", 1),  # silent -ed
        ("needed", 2),  # sounded -ded
        ("makes", 1),  # silent -es
        ("changes", 2),  # sounded -ges
        ("yoga", 2),  # y at the start is a consonant
        ("everyone", 3),
        ("body", 2),
        ("relaxation", 4),
        ("exercise", 3),
        ("mindfulness", 3),
        ("flare-up", 2),
        ("doctor's", 2),
        ("a", 1),
        ("be", 1),
    ],
)
def test_syllable_heuristic(word: str, count: int) -> None:
    assert syllables(word) == count


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=20))
def test_every_word_has_at_least_one_syllable(word: str) -> None:
    assert syllables(word) >= 1


def test_flesch_reading_ease() -> None:
    # 6 words, 1 sentence, 6 syllables: 206.835 - 1.015 * 6 - 84.6 * 1
    assert flesch_reading_ease("The cat sat on the mat.") == pytest.approx(116.145)
    assert sentences("One. Two! Three? Four") == 4
    assert sentences("No full stop") == 1
    assert sentences("Wait... really?! Yes.") == 3
    assert flesch_reading_ease("") == 0.0
    assert flesch_reading_ease(HARD_TEXT) < 0
    plain = "Walk for ten minutes. Then rest a little. Do it again each day."
    assert flesch_reading_ease(plain) > 80


def test_hard_tip_is_reported(content: Content, rules: LintRules) -> None:
    hard = (
        "Regular physical activity contributes to recovery for most individuals experiencing "
        "persistent back pain, and appropriate modifications encourage confidence."
    )
    report = lint(one_topic(content, "pacing-01", text=hard), rules)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        "topics/pacing.yml: tip pacing-01: hard to read (Flesch Reading Ease 25.4, floor 60)"
    )
    # One hard tip does not sink the whole topic's average (93.9 → 88.5) ...
    assert not problems_about(report, "on average")


def test_hard_topic_is_reported(content: Content, rules: LintRules) -> None:
    # ... but a topic of tips that are each above the tip floor, yet not easy, does.
    middling = (
        "Staying active helps most back pain settle. Regular movement keeps your joints and "
        "muscles working, and it supports recovery after a flare. Build up gradually, with "
        "sensible changes, and your confidence will grow."
    )
    assert TIP_READABILITY_FLOOR < flesch_reading_ease(f"{middling}\nWalk today.") < 80
    topic = content.topics["pacing"]
    tips = tuple(replace(tip, text=middling, action="Walk today.") for tip in topic.tips)
    changed = replace(content, topics={"pacing": replace(topic, tips=tips)})
    # The copies are duplicates of each other too; only readability matters here.
    report = lint(changed, replace(rules, duplicate_threshold=1.0))
    assert report.problems == [
        "topics/pacing.yml: tips are hard to read on average (Flesch Reading Ease 65.0, floor 80)"
    ]


def test_readability_counts_text_and_action(content: Content) -> None:
    tip = content.tips["sleep-01"]
    assert tip_readability(tip) == pytest.approx(flesch_reading_ease(f"{tip.text}\n{tip.action}"))
    assert tip_readability(replace(tip, action=HARD_TEXT)) < tip_readability(tip)


# ---------------------------------------------------------------- entry points


def test_check_content_raises_on_problems(content: Content) -> None:
    assert check_content(content, CONTENT).ok
    broken = with_tip(content, "sleep-02", text="This will cure you.")
    with pytest.raises(ContentError) as caught:
        check_content(broken, CONTENT)
    assert caught.value.problems[0].startswith("topics/sleep.yml: tip sleep-02: text says")
    assert lint_content_dir(broken, CONTENT).problems == caught.value.problems


def _run_check(content_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if content_dir is not None:
        env["CONTENT_DIR"] = str(content_dir)
    return subprocess.run(
        [sys.executable, "-m", "bot", "content", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_content_check_command_prints_the_summary(content: Content) -> None:
    result = _run_check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "content OK" in result.stdout
    assert "readability" in result.stdout
    for topic_id in content.topics:
        assert re.search(rf"^{topic_id}\s+13\s", result.stdout, re.MULTILINE), topic_id
    assert f"{len(content.topics)} topics, {len(content.tips)} tips" in result.stdout


def test_content_check_command_fails_on_lint_problems(tmp_path: Path) -> None:
    root = tmp_path / "content"
    shutil.copytree(CONTENT, root)
    path = root / "topics" / "sleep.yml"
    data = yaml.safe_load(path.read_text())
    data["tips"][1]["action"] = "Take a painkiller before bed."
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = _run_check(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "topics/sleep.yml: tip sleep-02: action says 'painkiller'" in result.stdout
    assert "content OK" not in result.stdout
