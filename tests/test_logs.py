"""Logging never shows the token, whoever logs it."""

from __future__ import annotations

import io
import logging

import pytest

from bot.logs import configure_logging
from tests.fakes.telegram_api import TEST_TOKEN


def test_configured_logging_redacts_the_token_and_quiets_http_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("DEBUG", secrets=[TEST_TOKEN])
        logging.getLogger("some.library").info("calling https://x/bot%s/getMe", TEST_TOKEN)
        logging.getLogger("httpx").info("HTTP Request: POST https://x/bot%s/getMe", TEST_TOKEN)
        logging.getLogger("bot").debug("plain line")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    output = stream.getvalue()
    assert "calling https://x/bot[redacted]/getMe" in output
    assert "plain line" in output
    assert "HTTP Request" not in output
    assert TEST_TOKEN not in output
