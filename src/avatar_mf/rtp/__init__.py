"""RTP and RTCP, sans-IO (RFC 3550, RFC 5761, RFC 4733): wire formats, statistics, jitter buffer.

A low floor of the tree: it imports nothing of the product above it.
"""

from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.packet import RtpExtension, RtpPacket, is_rtcp, parse_rtp

__all__ = ["RtpError", "RtpExtension", "RtpPacket", "is_rtcp", "parse_rtp"]
