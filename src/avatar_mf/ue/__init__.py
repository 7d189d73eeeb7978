"""The product's own test UE: a SIP UAC offering WebRTC data channels to the MF.

* :mod:`.sip_client` -- a small SIP client over UDP or TCP built on the product's transaction
  layer (RFC 3261 17), with the asyncio socket below it.
* :mod:`.offer` -- the UE's SDP offer (optional AMR-WB audio, the ``UDP/DTLS/SCTP
  webrtc-datachannel`` m-line with dcmap lines, ICE only when asked) and reading the answer.
* :mod:`.call` -- :class:`UeCall`: INVITE/ACK/BYE, data channels up, send/receive, re-INVITE,
  timing figures.
* :mod:`.cli` -- ``avatar-mf ue call <sip-uri>``.

Used by the integration tests and the benchmarks against a real MF process, and by operators to
check a deployed MF.
"""

from avatar_mf.ue.call import (
    DATACHANNEL_FEATURE_TAG,
    CallRejected,
    CallTiming,
    ChannelStats,
    UeCall,
    UeCallError,
)
from avatar_mf.ue.offer import DEFAULT_STREAMS, AnswerError, AnswerInfo, build_offer, read_answer
from avatar_mf.ue.sip_client import SipClient

__all__ = [
    "DATACHANNEL_FEATURE_TAG",
    "DEFAULT_STREAMS",
    "AnswerError",
    "AnswerInfo",
    "CallRejected",
    "CallTiming",
    "ChannelStats",
    "SipClient",
    "UeCall",
    "UeCallError",
    "build_offer",
    "read_answer",
]
