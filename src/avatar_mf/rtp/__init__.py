"""RTP and RTCP, sans-IO (RFC 3550, RFC 5761, RFC 4733, RFC 6184, RFC 7741).

Wire formats, statistics, the jitter buffer, payload formats:

* :mod:`~avatar_mf.rtp.packet`: RTP packets, rtcp-mux demultiplexing;
* :mod:`~avatar_mf.rtp.rtcp`: SR, RR, SDES, BYE, compound packets;
* :mod:`~avatar_mf.rtp.stats`: per-source reception statistics, report blocks, RTT;
* :mod:`~avatar_mf.rtp.jitter`: the jitter buffer;
* :mod:`~avatar_mf.rtp.telephone_event`: DTMF (RFC 4733);
* :mod:`~avatar_mf.rtp.h264`, :mod:`~avatar_mf.rtp.vp8`: video payload formats (RFC 6184,
  RFC 7741).

A low floor of the tree: it imports nothing of the product above it.
"""

from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.jitter import JitterBuffer, JitterFrame, JitterLoss, PushResult
from avatar_mf.rtp.packet import RtpExtension, RtpPacket, is_rtcp, parse_rtp
from avatar_mf.rtp.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    parse_rtcp,
    serialize_rtcp,
)
from avatar_mf.rtp.stats import ReceiveStats, ReceptionFigures, SendStats, round_trip_time
from avatar_mf.rtp.telephone_event import (
    DtmfDigit,
    DtmfReceiver,
    TelephoneEvent,
    build_telephone_events,
    parse_telephone_events,
)

__all__ = [
    "DtmfDigit",
    "DtmfReceiver",
    "Goodbye",
    "JitterBuffer",
    "JitterFrame",
    "JitterLoss",
    "PushResult",
    "ReceiveStats",
    "ReceiverReport",
    "ReceptionFigures",
    "ReportBlock",
    "RtcpPacket",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "SdesChunk",
    "SendStats",
    "SenderReport",
    "SourceDescription",
    "TelephoneEvent",
    "build_telephone_events",
    "is_rtcp",
    "parse_rtcp",
    "parse_rtp",
    "parse_telephone_events",
    "round_trip_time",
    "serialize_rtcp",
]
