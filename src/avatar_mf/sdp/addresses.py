"""IP literals in SDP connection data (RFC 8866 sections 5.2 and 5.7), parsed once.

Answering an offer reads the same few addresses again and again: the UE's ``c=`` address
(whether the data channel and the audio can use it) and the node's own address (the answer's
``o=`` and ``c=``). :func:`ip_literal` keeps its last results in a bounded cache
(:func:`avatar_mf.lru.cached_parser`: :data:`CACHE_SIZE` values of at most
:data:`CACHE_MAX_LENGTH` characters, so a peer cannot make it large); the values it returns,
``ipaddress`` objects, are immutable. The key is the address text itself, so a node whose
configured address changes simply looks up the new text.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from avatar_mf.lru import cached_parser

__all__ = ["CACHE_MAX_LENGTH", "CACHE_SIZE", "IpAddress", "ip_literal"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Addresses kept: the UEs setting up calls at once and the node's own.
CACHE_SIZE: Final = 1024
#: Longer texts (no IP literal is) are looked at every time.
CACHE_MAX_LENGTH: Final = 64


@cached_parser(size=CACHE_SIZE, max_length=CACHE_MAX_LENGTH)
def ip_literal(text: str) -> IpAddress | None:
    """``text`` as an IPv4 or IPv6 address (``ipaddress.ip_address``), ``None`` if it is not
    an IP literal (a host name, or garbage)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
