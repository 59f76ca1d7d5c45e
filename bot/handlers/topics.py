"""Topics: /topics menu, one command per topic, deep links, keyword suggestions, /sources."""

from __future__ import annotations

from html import escape

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.error import BadRequest

from bot.content import Content, Topic, plain, render_tip
from bot.db.engine import unit_of_work
from bot.handlers.common import Context, reply, runtime, visit_id
from bot.handlers.daily import edit, send_tip
from bot.keyboards import button, decode, keyboard
from bot.runtime import Runtime
from bot.services import subscriptions, tip_history
from bot.services.topic_match import match_topics
from bot.views import View

BUTTON_PATTERN = r"^(topic|topics|tfocus)(:|$)"
DEEP_LINK_PREFIX = "topic-"


def overview_text(content: Content, topic: Topic) -> str:
    return content.text(
        "topics.overview",
        emoji=topic.emoji,
        title=plain(topic.title),
        overview=plain(topic.overview),
    )


def menu_view(content: Content) -> View:
    """Every topic as a button, two per row."""
    topics = list(content.topics.values())
    rows = [
        [button(topic.label, "topic", topic.id) for topic in topics[start : start + 2]]
        for start in range(0, len(topics), 2)
    ]
    return View(content.text("topics.menu"), keyboard(rows))


def topic_buttons(content: Content, topic: Topic, focused: bool) -> InlineKeyboardMarkup:
    focus_label = "buttons.focused_topic" if focused else "buttons.focus_topic"
    return keyboard(
        [
            [button(content.text("buttons.another_tip"), "topic", topic.id)],
            [button(content.text(focus_label), "tfocus", topic.id)],
            [button(content.text("buttons.back_to_topics"), "topics")],
        ]
    )


async def open_topic(update: Update, context: Context, topic: Topic) -> None:
    """The topic's overview, then a tip from it the user has not seen yet."""
    rt = runtime(context)
    await reply(update, overview_text(rt.content, topic))
    await send_tip(update, context, only_topic=topic.id)


async def topic_command(update: Update, context: Context) -> None:
    """/stress, /sleep, /movement, …: open that topic."""
    message = update.effective_message
    if message is None or not message.text:
        return
    command = message.text.split(maxsplit=1)[0][1:].split("@", 1)[0].lower()
    topic = runtime(context).content.topics.get(command)
    if topic is not None:
        await open_topic(update, context, topic)


async def deep_link(update: Update, context: Context, payload: str) -> bool:
    """Open a topic from t.me/<bot>?start=topic-<id>; False if the payload is not one."""
    if not payload.startswith(DEEP_LINK_PREFIX):
        return False
    topic = runtime(context).content.topics.get(payload.removeprefix(DEEP_LINK_PREFIX))
    if topic is None:
        return False
    await open_topic(update, context, topic)
    return True


async def topics_menu(update: Update, context: Context) -> None:
    """/topics: every topic as a button."""
    view = menu_view(runtime(context).content)
    await reply(update, view.text, reply_markup=view.markup)


async def suggest(update: Update, context: Context, text: str) -> bool:
    """Offer the one or two topics that best match free text; False if none matches."""
    content = runtime(context).content
    found = match_topics(text, content.topics)
    if not found:
        return False
    markup = keyboard([[button(topic.label, "topic", topic.id)] for topic in found])
    await reply(update, content.text("topics.suggest"), reply_markup=markup)
    return True


async def sources(update: Update, context: Context) -> None:
    """/sources: the bibliography, with links."""
    content = runtime(context).content
    lines = [content.text("topics.sources_header")]
    for source in content.sources.values():
        title = escape(source.title)
        if source.url:
            title = f'<a href="{escape(source.url)}">{title}</a>'
        year = content.text("topics.source_year", year=escape(source.year)) if source.year else ""
        lines.append(
            content.text(
                "topics.source_line", title=title, publisher=escape(source.publisher), year=year
            )
        )
    await reply(update, "\n".join(lines))


async def _opened_view(rt: Runtime, user_id: int, topic: Topic) -> View:
    content = rt.content
    async with unit_of_work(rt.sessions) as session:
        tip = await tip_history.next_tip_for(
            session, content, user_id, only_topic=topic.id, now=rt.clock.now()
        )
        if tip is not None:
            await tip_history.record_view(session, user_id, tip)
        focused = topic.id in (await subscriptions.load(session, user_id)).focus_topics
    tip_text = render_tip(content, tip) if tip else content.text("daily.no_tips_left")
    text = content.text("topics.opened", overview=overview_text(content, topic), tip=tip_text)
    return View(text, topic_buttons(content, topic, focused))


async def on_button(update: Update, context: Context) -> None:
    """Topic menu buttons: open a topic in place, another tip, focus, back to the menu."""
    query = update.callback_query
    rt = runtime(context)
    press = decode(query.data if query else None)
    user_id = await visit_id(rt, update)
    if query is None or press is None or user_id is None:
        if query is not None:
            await query.answer(rt.content.text("errors.stale_button"), show_alert=True)
        return
    if press.action == "topics":
        await query.answer()
        await edit(query, menu_view(rt.content))
        return
    topic = rt.content.topics.get(press.args[0])
    if topic is None:
        await query.answer(rt.content.text("errors.stale_button"), show_alert=True)
        return
    if press.action == "topic":
        await query.answer()
        await edit(query, await _opened_view(rt, user_id, topic))
    else:
        await _toggle_focus(rt, query, user_id, topic)


async def _toggle_focus(rt: Runtime, query: CallbackQuery, user_id: int, topic: Topic) -> None:
    async with unit_of_work(rt.sessions) as session:
        focus = await subscriptions.toggle_focus(session, user_id, topic.id)
    focused = topic.id in focus
    await query.answer(rt.content.text("topics.focus_added" if focused else "topics.focus_removed"))
    try:
        await query.edit_message_reply_markup(topic_buttons(rt.content, topic, focused))
    except BadRequest as exc:  # an older copy of the same topic already shows this state
        if "not modified" not in str(exc):
            raise
