"""Pure parameter logic: validation and the a=setup -> DTLS role table (RFC 8842)."""

from __future__ import annotations

import pytest

from avatar_mf.media import (
    LocalIce,
    LocalParams,
    MediaParamsError,
    RemoteParams,
    StreamSpec,
    answer_setup,
    as_remote,
    dtls_role,
)

FP = (("sha-1", "AB:CD"),)


def test_stream_spec_validation() -> None:
    StreamSpec(0)
    StreamSpec(65534, max_retr=5)
    with pytest.raises(MediaParamsError):
        StreamSpec(65535)
    with pytest.raises(MediaParamsError):
        StreamSpec(1000, max_retr=1, max_time=150)
    assert MediaParamsError("x").status_hint == 488


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"address": "example.com"}, "IP address"),
        ({"setup": "holdconn"}, "setup"),
        ({"fingerprints": ()}, "fingerprint"),
        ({"fingerprints": (("SHA-1", "AB"),)}, "lower case"),
        ({"sctp_port": 0}, "port"),
    ],
)
def test_remote_params_validation(kwargs: dict[str, object], problem: str) -> None:
    base: dict[str, object] = {
        "address": "127.0.0.1",
        "port": 9,
        "setup": "actpass",
        "fingerprints": FP,
    }
    base.update(kwargs)
    with pytest.raises(MediaParamsError, match=problem):
        RemoteParams(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offer", "preferred", "answer", "answerer_role", "offerer_role"),
    [
        ("actpass", "active", "active", "client", "server"),
        ("actpass", "passive", "passive", "server", "client"),
        ("active", "active", "passive", "server", "client"),
        ("passive", "passive", "active", "client", "server"),
    ],
)
def test_setup_negotiation(
    offer: str, preferred: str, answer: str, answerer_role: str, offerer_role: str
) -> None:
    got = answer_setup(offer, actpass_answer=preferred)  # type: ignore[arg-type]
    assert got == answer
    assert dtls_role(got, offer) == answerer_role  # type: ignore[arg-type]
    assert dtls_role(offer, got) == offerer_role  # type: ignore[arg-type]


def test_setup_conflicts() -> None:
    with pytest.raises(MediaParamsError):
        dtls_role("actpass", "actpass")
    with pytest.raises(MediaParamsError):
        dtls_role("active", "active")


def test_as_remote_round_trip() -> None:
    local = LocalParams(
        address="127.0.0.1",
        port=4000,
        setup="actpass",
        fingerprints=(("sha-256", "AA:BB"),),
        sctp_port=5000,
        max_message_size=1024,
        tls_id="abcdefghijklmnopqrstuvwx",
        ice=LocalIce("ufrag", "p" * 22, ("1 1 udp 1 127.0.0.1 4000 typ host",)),
    )
    remote = as_remote(local)
    assert (remote.address, remote.port, remote.setup) == ("127.0.0.1", 4000, "actpass")
    assert remote.max_message_size == 1024 and remote.tls_id == local.tls_id
    assert remote.ice is not None and remote.ice.candidates == local.ice.candidates  # type: ignore[union-attr]
