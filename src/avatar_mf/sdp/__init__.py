"""The SDP layer: pure, sans-IO parsing, modelling and offer/answer for IMS data channels.

* :mod:`~avatar_mf.sdp.model` -- RFC 8866 session descriptions, lossless parse/serialize.
* :mod:`~avatar_mf.sdp.datachannel` -- RFC 8841/8864/8122/8842/8839 data channel attributes,
  TS 26.114 clause 6.2.10 stream acceptance.
* :mod:`~avatar_mf.sdp.offer_answer` -- RFC 3264 answers in two phases (plan, then render).
* :mod:`~avatar_mf.sdp.errors` -- errors carrying their SIP status (400 / 488 + Warning).

Typical use by the call layer::

    offer = parse_sdp(invite.body)                  # SdpError -> 400
    plan = plan_answer(offer, policy)               # SdpNotAcceptable -> 488 + Warning
    endpoint = create_endpoint(plan.datachannel)    # role = plan.datachannel.local_setup
    answer = render_answer(plan, endpoint_params, local_address=..., session_id=...,
                           session_version=...)
    body = serialize_sdp(answer)
"""

from avatar_mf.sdp.datachannel import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_SCTP_PORT,
    DEFAULT_STREAM_POLICY,
    HASH_LENGTHS,
    DataChannelOffer,
    DcMap,
    DcSa,
    Fingerprint,
    IceParams,
    LocalSetup,
    RejectedStream,
    Setup,
    StreamDecision,
    StreamPolicy,
    accept_streams,
    format_dcmap,
    format_dcsa,
    format_fingerprint,
    generate_tls_id,
    parse_datachannel_offer,
    parse_dcmap,
    parse_dcsa,
    parse_fingerprint,
)
from avatar_mf.sdp.errors import SdpError, SdpNotAcceptable, SdpWarning
from avatar_mf.sdp.model import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
    parse_sdp,
    serialize_sdp,
)
from avatar_mf.sdp.offer_answer import (
    DEFAULT_ANSWER_POLICY,
    AnswerPlan,
    AnswerPolicy,
    AnswerResult,
    DataChannelAnswerParams,
    DataChannelPlan,
    MediaLinePlan,
    Negotiated,
    StreamChanges,
    build_answer,
    plan_answer,
    render_answer,
    versioned_answer,
)

__all__ = [
    "DEFAULT_ANSWER_POLICY",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_SCTP_PORT",
    "DEFAULT_STREAM_POLICY",
    "HASH_LENGTHS",
    "AnswerPlan",
    "AnswerPolicy",
    "AnswerResult",
    "Attribute",
    "Bandwidth",
    "Connection",
    "DataChannelAnswerParams",
    "DataChannelOffer",
    "DataChannelPlan",
    "DcMap",
    "DcSa",
    "Fingerprint",
    "IceParams",
    "LocalSetup",
    "MediaDescription",
    "MediaLinePlan",
    "Negotiated",
    "Origin",
    "RejectedStream",
    "SdpError",
    "SdpNotAcceptable",
    "SdpWarning",
    "SessionDescription",
    "Setup",
    "StreamChanges",
    "StreamDecision",
    "StreamPolicy",
    "Timing",
    "accept_streams",
    "build_answer",
    "format_dcmap",
    "format_dcsa",
    "format_fingerprint",
    "generate_tls_id",
    "parse_datachannel_offer",
    "parse_dcmap",
    "parse_dcsa",
    "parse_fingerprint",
    "parse_sdp",
    "plan_answer",
    "render_answer",
    "serialize_sdp",
    "versioned_answer",
]
