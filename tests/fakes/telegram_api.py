"""The fake Bot API lives in the package (the offline demo uses it too); tests import it here."""

from bot.devtools.fake_bot_api import *  # noqa: F403
from bot.devtools.fake_bot_api import __all__  # noqa: F401
