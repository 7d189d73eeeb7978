"""SIGHUP's plan (which settings apply live), and call-detail records; no node, no network."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from avatar_mf.config import load_config
from avatar_mf.node.cdr import CdrWriter, call_record, media_layer
from avatar_mf.node.reload import plan_reload, with_live
from avatar_mf.ua.end_reason import CallEnd, EndReason


def _config(**env: str) -> object:
    return load_config(None, env={f"AVATAR_MF_{k}": v for k, v in env.items()})


def test_nothing_changed_is_an_empty_plan() -> None:
    assert plan_reload(_config(), _config()).empty


def test_live_and_restart_settings_are_told_apart() -> None:
    old = _config()
    new = _config(
        LOG__LEVEL="DEBUG",
        SIP__TRUSTED_PEERS="10.0.0.0/8",
        SIP__PORT="5070",
        PIPELINE__SCENE__OPTIONS='{"a" = 1}',
        ADMIN__TOKEN="a-new-long-token",
        MEDIA__HOST="127.0.0.2",
    )
    plan = plan_reload(old, new)
    assert [c.key_path for c in plan.live] == [
        "sip.trusted_peers", "log.level", "admin.token", "pipeline.scene.options",
    ]  # fmt: skip
    assert [c.key_path for c in plan.restart] == ["sip.port", "media.host"]
    shown = [str(c) for c in (*plan.live, *plan.restart)]
    assert "log.level: INFO -> DEBUG" in shown
    assert "sip.port: 5060 -> 5070" in shown
    assert "admin.token (changed)" in shown  # a secret is never logged
    assert not any("a-new-long-token" in line for line in shown)


def test_the_running_config_takes_only_the_live_settings() -> None:
    old = _config()
    new = _config(LOG__LEVEL="DEBUG", SIP__PORT="5070")
    running = with_live(old, new, plan_reload(old, new).live)
    assert running.log.level == "DEBUG"
    assert running.sip.port == 5060
    # The restart-only change is reported again by the next reload, until a restart.
    assert [c.key_path for c in plan_reload(running, new).restart] == ["sip.port"]
    assert plan_reload(running, new).live == ()


# --------------------------------------------------------------------------- CDR

SESSION = {
    "call_id": "c1", "from": "sip:alice@ims", "to": "sip:avatar@mf", "identity": "sip:alice@ims",
    "source": "127.0.0.1:5062", "transport": "udp", "room": "r1", "participant_id": "p1",
    "animation_data": ["voice"], "messages_in": 3, "messages_out": 4, "bytes_in": 30,
    "bytes_out": 40, "state": "ended",
}  # fmt: skip
STREAMS: list[dict[str, object]] = [{"stream_id": 1000, "label": "m", "subprotocol": "meta"}]


def test_a_record_has_every_field_in_order() -> None:
    record = call_record(
        SESSION, STREAMS, end=CallEnd(EndReason.BYE), start=0.25, setup=0.0123, duration=61.5
    )
    assert list(record) == [
        "type", "call_id", "from", "to", "identity", "source", "transport", "room",
        "participant_id", "animation_data", "streams", "messages_in", "messages_out", "bytes_in",
        "bytes_out",
        "start", "setup_s", "duration_s", "end_reason", "end_text", "failure", "media_layer",
        "audio", "video",
    ]  # fmt: skip
    assert record["start"] == "1970-01-01T00:00:00.250Z"
    assert (record["setup_s"], record["duration_s"]) == (0.012, 61.5)
    assert (record["end_reason"], record["failure"], record["media_layer"]) == ("bye", False, None)
    assert record["streams"] == STREAMS and record["bytes_out"] == 40
    assert record["animation_data"] == ["voice"]


@pytest.mark.parametrize(
    ("text", "layer"),
    [
        ("ice failed", "ICE"),
        ("dtls handshake failed: bad fingerprint", "DTLS"),
        ("sctp closed", "SCTP"),
        ("setup timeout in SCTP", "SCTP"),
        ("setup error: boom", None),
    ],
)
def test_media_failures_name_their_layer(text: str, layer: str | None) -> None:
    assert media_layer(text) == layer
    end = CallEnd(EndReason.MEDIA_FAILED, text)
    record = call_record(SESSION, [], end=end, start=0, setup=None, duration=0)
    assert (record["media_layer"], record["setup_s"], record["failure"]) == (layer, None, True)


def test_writer_appends_lines_and_reopens_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "cdr" / "calls.jsonl"
    writer = CdrWriter(path)
    writer.write({"call_id": "a"})
    path.rename(tmp_path / "cdr" / "calls.jsonl.1")  # logrotate
    writer.reopen(path)
    writer.write({"call_id": "b"})
    writer.close()
    assert json.loads((tmp_path / "cdr" / "calls.jsonl.1").read_text()) == {"call_id": "a"}
    assert json.loads(path.read_text()) == {"call_id": "b"}


def test_writer_without_a_file_logs_the_record(caplog: pytest.LogCaptureFixture) -> None:
    writer = CdrWriter(None)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # a node logging warnings only still shows its records
    try:
        writer.write({"call_id": "c"})
    finally:
        root.setLevel(level)
    [record] = [r for r in caplog.records if r.name == "avatar_mf.cdr"]
    assert record.__dict__["cdr"] == {"call_id": "c"}


def test_identity_peers_byte_rate_and_tls_files_apply_live() -> None:
    """Issue 9: SIGHUP reloads trusted peers, limits and TLS certificates. The lists and
    limits that came after the first reload work (who may assert an identity, the byte rate)
    and the tls/wss certificate files apply live too."""
    old = _config()
    new = _config(
        SIP__ASSERTED_IDENTITY_PEERS="10.1.0.0/16",
        SIP__RATE_LIMIT_BYTES_PER_SOURCE="1000",
        SIP__TLS_CERTIFICATE="/etc/avatar-mf/new-cert.pem",
        SIP__TLS_PRIVATE_KEY="/etc/avatar-mf/new-key.pem",
    )
    plan = plan_reload(old, new)
    assert sorted(c.key_path for c in plan.live) == [
        "sip.asserted_identity_peers",
        "sip.rate_limit_bytes_per_source",
        "sip.tls_certificate",
        "sip.tls_private_key",
    ]
    assert plan.restart == ()
