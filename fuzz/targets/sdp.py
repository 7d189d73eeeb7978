"""SDP: :func:`avatar_mf.sdp.model.parse_sdp` then the offer/answer of
:mod:`avatar_mf.sdp.offer_answer` (:func:`plan_answer`, :func:`render_answer`), as the call
media code uses them.

Documented outcomes: ``parse_sdp`` returns a SessionDescription or raises
:class:`~avatar_mf.sdp.errors.SdpError`; ``plan_answer`` returns a plan or raises ``SdpError``
(:class:`~avatar_mf.sdp.errors.SdpNotAcceptable` among them). ``render_answer``'s ValueErrors
are for inconsistent local arguments, which are fixed and valid here: any exception from it is
a crash. The answer the MF writes must serialise and parse back, and a re-offer of the same
SDP must plan too.
"""

from __future__ import annotations

from avatar_mf.sdp.datachannel import Fingerprint, IceParams
from avatar_mf.sdp.errors import SdpError
from avatar_mf.sdp.model import parse_sdp, serialize_sdp
from avatar_mf.sdp.offer_answer import (
    DataChannelAnswerParams,
    Negotiated,
    plan_answer,
    render_answer,
)

_FINGERPRINT = Fingerprint("sha-256", bytes(range(32)))
_ICE = IceParams(
    "fuzzufrag", "fuzzpassword0123456789ab", ("1 1 udp 2130706431 192.0.2.1 9 typ host",)
)


def _params(needs_ice: bool) -> DataChannelAnswerParams:
    return DataChannelAnswerParams(
        port=40000,
        fingerprints=(_FINGERPRINT,),
        tls_id="fuzztlsid0123456789abcdef",
        ice=_ICE if needs_ice else None,
    )


def fuzz_one(data: bytes) -> None:
    try:
        offer = parse_sdp(data)
    except SdpError:
        return
    try:
        plan = plan_answer(offer)
    except SdpError:
        return
    dc = plan.datachannel
    answer = render_answer(
        plan,
        _params(dc.needs_ice) if dc is not None else None,
        local_address="192.0.2.10",
        session_id=1,
        session_version=1,
    )
    parse_sdp(serialize_sdp(answer))  # the MF's own answer always parses
    try:
        plan_answer(offer, previous=Negotiated(offer, answer))  # the same SDP re-offered
    except SdpError:
        return
