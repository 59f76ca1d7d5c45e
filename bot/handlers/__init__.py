"""The one ordered list of handlers. Order matters: within a group, the first match wins."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.handlers import (
    basics,
    checkin,
    daily,
    errors,
    fallback,
    flood,
    membership,
    privacy,
    topics,
)

# New messages in a private chat. Edited messages are ignored on purpose: re-running a
# command because someone fixed a typo would surprise them.
PRIVATE = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
GROUPS = (filters.ChatType.GROUPS | filters.ChatType.CHANNEL) & filters.UpdateType.MESSAGE


def handlers(topic_ids: list[str]) -> list[BaseHandler[Any, Any, Any]]:
    """Every handler, in the order they are tried; topic commands come from content/."""
    return [
        # Membership changes come first; they never carry a message.
        ChatMemberHandler(membership.my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER),
        # Groups and channels: health data does not belong there. Only /start and /help
        # answer, pointing to a private chat; every other group message is ignored.
        CommandHandler(["start", "help"], basics.group_pointer, filters=GROUPS),
        # Getting started, safety, privacy.
        CommandHandler("start", basics.start, filters=PRIVATE),
        CommandHandler("help", basics.help_command, filters=PRIVATE),
        CommandHandler("redflags", basics.redflags, filters=PRIVATE),
        CommandHandler("privacy", privacy.privacy_command, filters=PRIVATE),
        CommandHandler("export", privacy.export, filters=PRIVATE),
        CommandHandler("delete", privacy.delete_command, filters=PRIVATE),
        # Operators only; for everyone else it answers like an unknown command.
        CommandHandler("admin", privacy.admin, filters=PRIVATE),
        # Daily tips: subscription, time zone and time, pause, settings, tips on demand.
        CommandHandler("subscribe", daily.subscribe, filters=PRIVATE),
        CommandHandler("unsubscribe", daily.unsubscribe, filters=PRIVATE),
        CommandHandler("timezone", daily.timezone, filters=PRIVATE),
        CommandHandler("time", daily.tip_time, filters=PRIVATE),
        CommandHandler("pause", daily.pause, filters=PRIVATE),
        CommandHandler("resume", daily.resume, filters=PRIVATE),
        CommandHandler("settings", daily.settings_command, filters=PRIVATE),
        CommandHandler("tip", daily.tip_command, filters=PRIVATE),
        MessageHandler(PRIVATE & filters.LOCATION, daily.location),
        # Check-ins: guided or quick, and what they show.
        CommandHandler("checkin", checkin.checkin_command, filters=PRIVATE),
        CommandHandler("history", checkin.history, filters=PRIVATE),
        CommandHandler("trends", checkin.trends, filters=PRIVATE),
        # Topics: the menu, the bibliography, and one command per topic file.
        CommandHandler("topics", topics.topics_menu, filters=PRIVATE),
        CommandHandler("sources", topics.sources, filters=PRIVATE),
        CommandHandler(topic_ids, topics.topic_command, filters=PRIVATE),
        # Buttons: each feature claims its callback actions; the catch-all comes last.
        CallbackQueryHandler(daily.on_button, pattern=daily.BUTTON_PATTERN),
        CallbackQueryHandler(topics.on_button, pattern=topics.BUTTON_PATTERN),
        CallbackQueryHandler(checkin.on_button, pattern=checkin.BUTTON_PATTERN),
        CallbackQueryHandler(checkin.on_reminder, pattern=checkin.REMINDER_PATTERN),
        CallbackQueryHandler(privacy.on_button, pattern=privacy.BUTTON_PATTERN),
        # Fallbacks, last: anything that no feature above wanted.
        MessageHandler(PRIVATE & filters.COMMAND, fallback.unknown_command),
        MessageHandler(PRIVATE & filters.TEXT, fallback.free_text),
        MessageHandler(PRIVATE, fallback.not_text),
        CallbackQueryHandler(fallback.stale_button),
    ]


# Group -3 sees every update first: flood control stops one sender who floods the bot.
# Group -2: a button pressed outside the presser's own private chat goes no further.
# Group -1: text typed while a check-in waits for its note is the note (the handler then
# stops further processing); any other text passes on to group 0.
GUARD = -3
FOREIGN = -2
EARLY = -1


def register(application: Application[Any, Any, Any, Any, Any, Any], topic_ids: list[str]) -> None:
    """Add every handler and the error handler to the application."""
    application.add_handler(TypeHandler(Update, flood.check), group=GUARD)
    application.add_handler(CallbackQueryHandler(fallback.foreign_button), group=FOREIGN)
    application.add_handler(
        MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, checkin.note_text), group=EARLY
    )
    application.add_handlers(handlers(topic_ids))
    application.add_error_handler(errors.on_error)
