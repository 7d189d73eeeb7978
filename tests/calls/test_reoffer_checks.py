"""A malformed re-offer is refused (488 with a Warning) and leaves the call's channels as they
were (issue 9): a stream id mapped twice used to close the live bootstrap channel silently,
a garbage connection address was accepted. The real media endpoint, never started."""

from __future__ import annotations

import pytest

from avatar_mf.calls.call_media import CallMediaSession
from avatar_mf.sip.errors import SipError
from tests.calls.test_call_media_start import INFO, OFFER, make_factory

REOFFER = OFFER.replace(b"o=ue1 2890844526 2890844526", b"o=ue1 2890844526 2890844527")


@pytest.mark.parametrize(
    ("offer", "warn_code"),
    [
        (REOFFER.replace(b'a=dcmap:10 subprotocol="http"', b'a=dcmap:0 subprotocol="http"'), 399),
        (REOFFER.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 not..an..address"), 301),
    ],
    ids=["duplicate-stream-id", "garbage-connection-address"],
)
async def test_a_malformed_reoffer_is_488_and_changes_nothing(offer: bytes, warn_code: int) -> None:
    assert offer != REOFFER
    session = await make_factory().create(INFO, OFFER, lambda _reason: None)
    assert isinstance(session, CallMediaSession)
    try:
        dc, answer = session.dc, session.local_sdp
        assert dc is not None and {0, 10} <= set(dc.streams)
        with pytest.raises(SipError) as info:
            await session.renegotiate(offer)
        assert info.value.status == 488
        warning = dict(info.value.headers)["Warning"]
        assert warning.startswith(f"{warn_code} ")
        assert session.dc is dc and {0, 10} <= set(dc.streams)  # bootstrap channels kept
        assert session.local_sdp == answer
        again = await session.renegotiate(REOFFER)  # a well-formed re-offer still works
        assert b"a=dcmap:0 " in again and b"a=dcmap:10 " in again
    finally:
        await session.close()
