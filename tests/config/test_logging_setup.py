"""configure_logging and the JSON-lines / text formatters."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from avatar_mf.config import LogConfig
from avatar_mf.logging_setup import JsonLinesFormatter, TextFormatter, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide logging: put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ["avatar_mf", "avatar_mf.sip", "avatar_mf.media", "aioice"]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    logging.captureWarnings(False)


def configure(**settings: object) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(LogConfig.model_validate(settings), stream=stream)
    return stream


def test_json_lines_parse_and_carry_extra_fields() -> None:
    stream = configure(level="INFO", format="json")
    log = logging.getLogger("avatar_mf.sip")
    log.info("INVITE %s", "accepted", extra={"call_id": "abc@ue", "session_id": 7})
    log.warning("multi\nline")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO"
    assert first["logger"] == "avatar_mf.sip"
    assert first["msg"] == "INVITE accepted"
    assert (first["call_id"], first["session_id"]) == ("abc@ue", 7)
    assert first["ts"].endswith("Z") and first["ts"][10] == "T"
    assert second["msg"] == "multi\nline"


def test_json_exception_and_unserialisable_extras() -> None:
    stream = configure(format="json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("avatar_mf.media").exception(
            "failed", extra={"peer": ("127.0.0.1", 5060), "obj": object(), "level": "shadow"}
        )
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["extra_level"] == "shadow"
    assert entry["peer"] == ["127.0.0.1", 5060]
    assert entry["obj"].startswith("<object object")
    assert "RuntimeError: boom" in entry["exc"]


def test_text_format() -> None:
    stream = configure(format="text")
    logging.getLogger("avatar_mf.sip").info(
        "BYE sent", extra={"call_id": "abc", "reason": "user hung up"}
    )
    line = stream.getvalue()
    assert line.endswith(' INFO     avatar_mf.sip: BYE sent call_id=abc reason="user hung up"\n')


def test_per_module_levels() -> None:
    stream = configure(level="WARNING", format="json", modules={"avatar_mf.sip": "DEBUG"})
    logging.getLogger("avatar_mf.sip.transaction").debug("shown: child of a DEBUG module")
    logging.getLogger("avatar_mf.media").info("hidden: root is WARNING")
    logging.getLogger("avatar_mf.media").warning("shown")
    messages = [json.loads(line)["msg"] for line in stream.getvalue().splitlines()]
    assert messages == ["shown: child of a DEBUG module", "shown"]


def test_reconfiguring_replaces_the_previous_setup() -> None:
    first = configure(level="INFO", modules={"avatar_mf.sip": "DEBUG"})
    second = configure(level="INFO", format="text")
    logging.getLogger("avatar_mf.sip").debug("hidden now")
    logging.getLogger("avatar_mf.sip").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
    assert logging.getLogger("avatar_mf.sip").level == logging.NOTSET


def test_other_handlers_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    configure(level="INFO")
    logging.getLogger("avatar_mf").info("seen by caplog too")
    assert "seen by caplog too" in caplog.text


def test_warnings_are_logged() -> None:
    stream = configure(format="json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["logger"] == "py.warnings"


def test_formatters_are_usable_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hi %d", (1,), None)
    record.call_id = "c1"
    assert json.loads(JsonLinesFormatter().format(record))["call_id"] == "c1"
    assert TextFormatter().format(record).endswith("x: hi 1 call_id=c1")


class _Terminal(io.StringIO):
    """A stream that says it is a terminal (as stderr does in an interactive shell)."""

    def isatty(self) -> bool:
        return True


def test_auto_format_is_text_on_a_terminal_and_json_elsewhere() -> None:
    assert LogConfig().format == "auto"
    terminal = _Terminal()
    configure_logging(LogConfig(), stream=terminal)
    logging.getLogger("avatar_mf.sip").warning("to a person", extra={"call_id": "c1"})
    assert terminal.getvalue().endswith(" avatar_mf.sip: to a person call_id=c1\n")
    pipe = configure()  # a StringIO is not a terminal
    logging.getLogger("avatar_mf.sip").warning("to a collector")
    assert json.loads(pipe.getvalue())["msg"] == "to a collector"
