"""The product's own test UE: a SIP UAC offering WebRTC data channels to the MF (or a registered
UE answering calls), and the UE side of the avatar protocols on top.

* :mod:`.sip_client` -- a small SIP client over UDP or TCP built on the product's transaction
  layer (RFC 3261 17), with the asyncio socket below it.
* :mod:`.offer` -- the UE's SDP offer (optional AMR-WB audio, the ``UDP/DTLS/SCTP
  webrtc-datachannel`` m-line with dcmap lines, ICE only when asked) and reading the answer.
* :mod:`.call` -- :class:`UeCall`: INVITE/ACK/BYE, data channels up, send/receive, re-INVITE,
  timing figures.
* :mod:`.avatar` -- :class:`AvatarClient`: the metadata protocol (hello, avatar select,
  transfers with resume, text, scene, participants), animation units, base avatar upload.
* :mod:`.bootstrap` -- :class:`BootstrapClient`: HTTP over a bootstrap channel.
* :mod:`.dc_audio` -- :class:`~.dc_audio.DcAudioSender`: voice without RTP, as raw audio
  messages on an ``avatar-mf-audio`` channel (``ue call --audio-dc``).
* :mod:`.recorder` -- :class:`Recorder`: everything a UE receives, written to a directory.
* :mod:`.registration` -- :class:`Registration`: REGISTER with refresh (RFC 3261 10), sans-IO.
* :mod:`.listener` -- :class:`UeListener`: a registered UE answering (or rejecting) incoming
  calls, and placing calls from its registered endpoint.
* :mod:`.cli` -- ``avatar-mf ue call <sip-uri>``; :mod:`.listen_cli` -- ``avatar-mf ue listen``.

Used by the integration tests and the benchmarks against a real MF process, and by operators to
check a deployed MF.

The names below are imported on first use (PEP 562): ``avatar-mf --help`` and the ``ue call``
option parser do not pay for aiortc.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avatar_mf.ue.avatar import (
        AvatarClient,
        AvatarProtocolError,
        ReceivedMessage,
        ReceivedUnit,
        Transfer,
    )
    from avatar_mf.ue.bootstrap import BootstrapClient, HttpReply
    from avatar_mf.ue.call import (
        DATACHANNEL_FEATURE_TAG,
        CallRejected,
        CallTiming,
        ChannelStats,
        UeCall,
        UeCallError,
    )
    from avatar_mf.ue.listener import AnswerPolicy, IncomingRecord, UeListener
    from avatar_mf.ue.offer import (
        DEFAULT_STREAMS,
        AnswerError,
        AnswerInfo,
        build_offer,
        read_answer,
    )
    from avatar_mf.ue.recorder import Recorder
    from avatar_mf.ue.registration import Registration
    from avatar_mf.ue.sip_client import SipClient

_WHERE = {
    "AvatarClient": "avatar",
    "AvatarProtocolError": "avatar",
    "ReceivedMessage": "avatar",
    "ReceivedUnit": "avatar",
    "Transfer": "avatar",
    "BootstrapClient": "bootstrap",
    "HttpReply": "bootstrap",
    "DATACHANNEL_FEATURE_TAG": "call",
    "CallRejected": "call",
    "CallTiming": "call",
    "ChannelStats": "call",
    "UeCall": "call",
    "UeCallError": "call",
    "DEFAULT_STREAMS": "offer",
    "AnswerError": "offer",
    "AnswerInfo": "offer",
    "build_offer": "offer",
    "read_answer": "offer",
    "AnswerPolicy": "listener",
    "IncomingRecord": "listener",
    "UeListener": "listener",
    "Recorder": "recorder",
    "Registration": "registration",
    "SipClient": "sip_client",
}

__all__ = [
    "DATACHANNEL_FEATURE_TAG",
    "DEFAULT_STREAMS",
    "AnswerError",
    "AnswerPolicy",
    "AnswerInfo",
    "AvatarClient",
    "AvatarProtocolError",
    "BootstrapClient",
    "CallRejected",
    "CallTiming",
    "ChannelStats",
    "HttpReply",
    "IncomingRecord",
    "ReceivedMessage",
    "ReceivedUnit",
    "Recorder",
    "Registration",
    "SipClient",
    "Transfer",
    "UeCall",
    "UeCallError",
    "UeListener",
    "build_offer",
    "read_answer",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
