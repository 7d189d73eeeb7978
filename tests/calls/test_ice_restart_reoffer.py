"""A re-offer that restarts ICE (new ``a=ice-ufrag``/``a=ice-pwd``, same fingerprint and
tls-id: RFC 8445 section 9, RFC 8839 4.4.1.1.1) keeps the call's data channel association:
on the ICE-lite path the answer carries new local credentials (RFC 8839 4.4.1.2.2) and the
same DTLS parameters (RFC 8842 5.4); on aioice's full agent (``media.ice_lite = false``) it is
refused with 488 and a Warning naming ICE restart, and the call goes on as before. The real
media endpoint on loopback, never started."""

from __future__ import annotations

import pytest

from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.config import AppConfig
from avatar_mf.media import CertificateStore, DataChannelEndpointFactory
from avatar_mf.sdp.model import parse_sdp
from avatar_mf.sip.errors import SipError
from tests.calls.test_call_media_start import INFO, OFFER


def ice_offer(ufrag: str, pwd: str, version: int) -> bytes:
    """The IMS fixture's offer with ICE on its data channel m-line (a full agent's)."""
    ice = (
        f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"
        "a=candidate:1 1 udp 2130706431 127.0.0.1 49180 typ host\r\n"
    )
    text = OFFER.replace(b"\r\n", b"\n").decode().replace("\n", "\r\n")
    text = text.replace("a=setup:actpass\r\n", "a=setup:actpass\r\n" + ice)
    return text.replace("2890844526 2890844526", f"2890844526 {version}").encode()


def dc_line(sdp: bytes) -> dict[str, str | None]:
    md = next(m for m in parse_sdp(sdp).media if m.media == "application")
    names = ("ice-ufrag", "ice-pwd", "fingerprint", "tls-id", "setup")
    return {name: md.attribute_value(name) for name in names} | {"port": str(md.port)}


def make_factory(ice_lite: bool) -> CallSessionFactory:
    media = DataChannelEndpointFactory(
        CertificateStore.generate(), media_host="127.0.0.1", setup_timeout=5.0, ice_lite=ice_lite
    )
    return CallSessionFactory(media, AppConfig.model_validate({}))


async def test_the_lite_path_answers_a_restart_with_new_credentials() -> None:
    session = await make_factory(True).create(
        INFO, ice_offer("uea1", "a" * 22, 1), lambda _reason: None
    )
    assert isinstance(session, CallMediaSession)
    try:
        dc, first = session.dc, dc_line(session.local_sdp)
        assert dc is not None
        restarted = dc_line(await session.renegotiate(ice_offer("uea2", "b" * 22, 2)))
        assert session.dc is dc  # the same association: DTLS and SCTP go on
        assert restarted["ice-ufrag"] != first["ice-ufrag"]
        assert restarted["ice-pwd"] != first["ice-pwd"]
        for kept in ("fingerprint", "tls-id", "setup", "port"):
            assert restarted[kept] == first[kept], kept
        # A re-offer with the same credentials changes nothing (no restart).
        again = dc_line(await session.renegotiate(ice_offer("uea2", "b" * 22, 3)))
        assert again == restarted and session.dc is dc
    finally:
        await session.close()


async def test_the_full_agent_refuses_a_restart_with_488() -> None:
    session = await make_factory(False).create(
        INFO, ice_offer("uea1", "a" * 22, 1), lambda _reason: None
    )
    assert isinstance(session, CallMediaSession)
    try:
        dc, answer = session.dc, session.local_sdp
        assert b"a=ice-lite" not in answer
        with pytest.raises(SipError) as info:
            await session.renegotiate(ice_offer("uea2", "b" * 22, 2))
        assert info.value.status == 488
        warning = dict(info.value.headers)["Warning"]
        assert warning.startswith("399 ") and "ICE restart" in warning, warning
        assert session.dc is dc and session.local_sdp == answer  # the call goes on as before
        same = await session.renegotiate(ice_offer("uea1", "a" * 22, 2))
        assert dc_line(same)["ice-ufrag"] == dc_line(answer)["ice-ufrag"]
    finally:
        await session.close()


async def test_a_new_tls_id_is_a_new_association_as_before() -> None:
    """Out of scope of the restart: a new a=tls-id (a new DTLS association, RFC 8842 5.3)
    still replaces the endpoint, whatever the ICE credentials."""
    session = await make_factory(True).create(
        INFO, ice_offer("uea1", "a" * 22, 1), lambda _reason: None
    )
    assert isinstance(session, CallMediaSession)
    try:
        dc, first = session.dc, dc_line(session.local_sdp)
        reoffer = ice_offer("uea2", "b" * 22, 2).replace(b"4a4bb9b13f82183b", b"5b5cc0c24093294c")
        renewed = dc_line(await session.renegotiate(reoffer))
        assert session.dc is not None and session.dc is not dc and dc is not None
        assert dc.state == "closed"
        assert renewed["tls-id"] != first["tls-id"]
        assert renewed["ice-ufrag"] != first["ice-ufrag"]
    finally:
        await session.close()
