"""Process logging: one handler on stderr, JSON lines or text, per-logger levels.

Code logs through ``logging.getLogger(__name__)`` and passes context as ``extra``::

    log.info("INVITE accepted", extra={"call_id": call_id, "session_id": session.id})

:class:`JsonLinesFormatter` writes one JSON object per line with ``ts`` (UTC, ISO 8601),
``level``, ``logger``, ``msg``, every ``extra`` field, and ``exc``/``stack`` when present.
:class:`TextFormatter` writes the same information for people. :func:`configure_logging` is
called once by the command line, before the server starts; calling it again replaces what it
set up before (and nothing else, so test log capture keeps working): SIGHUP calls it again
with the reloaded ``[log]`` section, so levels change without a restart.

``log.format = "auto"`` (the default) picks :class:`TextFormatter` when the stream is a
terminal and :class:`JsonLinesFormatter` otherwise (a service manager's journal, a container
log, a pipe): :func:`resolved_format`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

from avatar_mf.config import LogConfig

__all__ = [
    "JsonLinesFormatter",
    "TextFormatter",
    "configure_logging",
    "record_extras",
    "resolved_format",
]

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    [*vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)), "message", "asctime"]
    + ["taskName"]  # added to LogRecord in Python 3.12
)


def record_extras(record: logging.LogRecord) -> dict[str, object]:
    """The fields a log call added through ``extra=``, in the order given."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{int(record.msecs):03d}Z"


def _json_default(value: object) -> str:
    return str(value)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_extras(record).items():
            entry[f"extra_{key}" if key in entry else key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=_json_default, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-05-09T07:35:25.123Z INFO     avatar_mf.sip: message call_id=abc``."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname:<8} {record.name}: {record.getMessage()}"
        extras = record_extras(record)
        if extras:
            text += " " + " ".join(f"{key}={_text_value(value)}" for key, value in extras.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def _text_value(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in "=\"'" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class _ConfiguredHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` installs; remembers the loggers it tuned."""

    def __init__(self, stream: TextIO, module_levels: Mapping[str, str]) -> None:
        super().__init__(stream)
        self.module_names = tuple(module_levels)


def resolved_format(configured: str, stream: TextIO) -> str:
    """"json" or "text": ``configured``, with "auto" decided by whether ``stream`` is a
    terminal (a stream without ``isatty`` is not one)."""
    if configured != "auto":
        return configured
    isatty = getattr(stream, "isatty", None)
    try:
        return "text" if isatty is not None and isatty() else "json"
    except ValueError:  # a closed stream
        return "json"


def configure_logging(cfg: LogConfig, *, stream: TextIO | None = None) -> None:
    """Send all logging to ``stream`` (default: ``sys.stderr`` at call time) as configured.

    The root logger gets ``cfg.level``; each logger in ``cfg.modules`` gets its own level, which
    may be lower than the root's (``avatar_mf.sip = "DEBUG"`` under ``INFO``) because the
    handler itself filters nothing. Python warnings are routed to logging too.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _ConfiguredHandler):
            root.removeHandler(handler)
            for name in handler.module_names:
                logging.getLogger(name).setLevel(logging.NOTSET)
    target = sys.stderr if stream is None else stream
    handler = _ConfiguredHandler(target, cfg.modules)
    json_lines = resolved_format(cfg.format, target) == "json"
    handler.setFormatter(JsonLinesFormatter() if json_lines else TextFormatter())
    root.addHandler(handler)
    root.setLevel(cfg.level)
    for name, level in cfg.modules.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(True)
