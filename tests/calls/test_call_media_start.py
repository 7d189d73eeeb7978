"""``CallMediaSession``: the data channel association starts when the UA says the answer went
out (``answer_sent``), not when the answer is made. The real media endpoint, on loopback."""

from __future__ import annotations

from pathlib import Path

from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.config import AppConfig
from avatar_mf.media import CertificateStore, DataChannelEndpointFactory
from avatar_mf.ua.media_seam import CallInfo

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()
INFO = CallInfo(
    call_id="c1",
    request_uri="sip:mf@127.0.0.1",
    from_uri="sip:ue@127.0.0.1",
    to_uri="sip:mf@127.0.0.1",
    identity="sip:ue@127.0.0.1",
    contact="<sip:ue@127.0.0.1>",
    source_host="127.0.0.1",
)


def make_factory() -> CallSessionFactory:
    media = DataChannelEndpointFactory(
        CertificateStore.generate(), media_host="127.0.0.1", setup_timeout=5.0
    )
    return CallSessionFactory(media, AppConfig.model_validate({}))


async def test_association_starts_at_answer_sent_not_at_answer() -> None:
    factory = make_factory()
    failures: list[str] = []
    session = await factory.create(INFO, OFFER, failures.append)
    assert isinstance(session, CallMediaSession)
    try:
        assert session.dc is not None
        assert session.local_sdp  # the answer is made ...
        assert session.dc.state == "new"  # ... and nothing is started yet
        session.answer_sent()
        assert session.dc.state == "connecting"
        session.answer_sent()  # a second call changes nothing
        assert session.dc.state == "connecting"
    finally:
        await session.close()
    assert failures == []


async def test_a_session_closed_before_the_answer_went_out_never_starts() -> None:
    """A CANCEL won: the UA closes the media and never calls answer_sent; a late call to it
    does not start anything either."""
    factory = make_factory()
    session = await factory.create(INFO, OFFER, lambda _reason: None)
    assert isinstance(session, CallMediaSession)
    dc = session.dc
    assert dc is not None and dc.state == "new"
    await session.close()
    session.answer_sent()
    assert session.dc is None
    assert dc.state == "closed"
