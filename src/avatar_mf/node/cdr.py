"""Call-detail records: one JSON object per call, written when the call ends.

A record (``"type": "cdr"``, then the fields below, in this order) is written for every call
the user agent ended, answered or not:

``call_id``, ``from``, ``to``, ``identity`` (P-Asserted-Identity, else From), ``source``
(``host:port`` of the peer: the P-CSCF), ``transport``, ``room`` and ``participant_id`` (null
outside a room), ``streams`` (every negotiated data channel: ``stream_id``, ``label``,
``subprotocol``), ``messages_in``/``messages_out`` and ``bytes_in``/``bytes_out`` (data
channel payload, from the UE / to the UE), ``start`` (UTC, ISO 8601, when the INVITE came),
``setup_s`` (INVITE to 200 OK; null if never answered), ``duration_s`` (200 OK to the end;
0 if never answered), ``end_reason`` (the bounded label of
:class:`~avatar_mf.ua.end_reason.EndReason`, as in the metrics: ``bye``, ``cancelled``,
``media_failed``, ``rejected_488`` ...), ``end_text`` (its free text, as in the BYE's Reason
header), ``failure`` (whether the end counts as a failure) and ``media_layer`` (for a media
failure, the layer that failed: ``ICE``, ``DTLS`` or ``SCTP``; null otherwise), ``audio``
(every RTP audio stream of the call: ``codec``, ``packets_in``, ``packets_out``, ``lost``,
``jitter_ms``, ``rtt_ms`` (null without RTCP from the UE), ``drops``; empty without audio),
``video`` (every RTP video stream: ``codec``, ``packets_in``, ``lost``, ``units``,
``keyframes``, ``decoded``, ``decode_errors``, ``skipped``, ``keyframe_requests_in`` (PLI +
FIR from the UE), ``keyframe_requests_out``, ``drops``, and what the MF sent: ``frames_out``,
``keyframes_out``, ``packets_out``, ``skipped_out``; empty without video).

:class:`CdrWriter` appends each record as a line to ``log.cdr_file`` (opened again by
:meth:`CdrWriter.reopen`, on SIGHUP, so that logrotate can move the file), or logs it as a
line of the ``avatar_mf.cdr`` logger (its ``cdr`` field) when no file is set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from avatar_mf.ua.end_reason import CallEnd

__all__ = ["CdrWriter", "call_record", "media_layer"]

log = logging.getLogger(__name__)
cdr_log = logging.getLogger("avatar_mf.cdr")


def _utc(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def call_record(
    session: Mapping[str, object],
    streams: list[dict[str, object]],
    *,
    end: CallEnd,
    start: float,
    setup: float | None,
    duration: float,
    audio: list[dict[str, object]] | None = None,
    video: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    """The record of one ended call. ``session``: the call as ``/sessions`` describes it;
    ``streams``: its negotiated data channels; ``start``: Unix time the INVITE came;
    ``setup`` and ``duration`` in seconds (``setup`` None: never answered)."""
    # One dict display in record order (no update() with generators per field group).
    get = session.get
    text = end.text
    return {
        "type": "cdr",
        "call_id": get("call_id"),
        "from": get("from"),
        "to": get("to"),
        "identity": get("identity"),
        "source": get("source"),
        "transport": get("transport"),
        "room": get("room"),
        "participant_id": get("participant_id"),
        "animation_data": get("animation_data"),
        "streams": streams,
        "messages_in": get("messages_in", 0),
        "messages_out": get("messages_out", 0),
        "bytes_in": get("bytes_in", 0),
        "bytes_out": get("bytes_out", 0),
        "start": _utc(start),
        "setup_s": None if setup is None else round(setup, 3),
        "duration_s": round(max(duration, 0.0), 3),
        "end_reason": end.label,
        "end_text": text,
        "failure": end.failure,
        "media_layer": media_layer(text) if end.reason.label.startswith("media") else None,
        "audio": audio or [],
        "video": video or [],
    }


def media_layer(text: str) -> str | None:
    """The layer a media failure text names (the media session's reasons: "ice failed",
    "dtls handshake failed: ...", "sctp closed", "setup timeout in DTLS" ...)."""
    lowered = text.lower()
    for layer in ("ice", "dtls", "sctp"):
        if f"{layer} " in lowered or lowered.endswith(layer):
            return layer.upper()
    return None


class CdrWriter:
    """Writes records as JSON lines to ``path``, or to the ``avatar_mf.cdr`` logger."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: TextIO | None = None
        self.written = 0
        if cdr_log.level == logging.NOTSET:
            # Records are not debugging output: shown under a WARNING root too (log.modules
            # can still set avatar_mf.cdr to something else).
            cdr_log.setLevel(logging.INFO)
        self._open()

    def _open(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            self._file = None
            log.error("CDR file %s cannot be opened, records go to the log: %s", self.path, exc)

    def write(self, record: Mapping[str, object]) -> None:
        if self._file is not None:
            try:
                self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                self._file.flush()
                self.written += 1
                return
            except OSError as exc:
                log.error("CDR file %s failed, records go to the log: %s", self.path, exc)
                self.close()
        call_id = record.get("call_id") or ""
        if cdr_log.isEnabledFor(logging.INFO):
            # Logger.info without its caller look-up (a walk up the stack on every call
            # ended: the line names this module anyway); the same record otherwise.
            line = cdr_log.makeRecord(
                cdr_log.name, logging.INFO, __file__, 0, "call record %s", (call_id,), None,
                func="write", extra={"call_id": call_id, "cdr": dict(record)},
            )  # fmt: skip
            cdr_log.handle(line)
        self.written += 1

    def reopen(self, path: Path | None) -> None:
        """Close the file and open ``path`` (the same one after logrotate moved it)."""
        self.close()
        self.path = path
        self._open()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
