"""Data channel media layer: ICE or plain UDP -> DTLS -> SCTP -> pre-negotiated data channels.

Knows nothing of SIP or SDP text; works on the plain parameter dataclasses of :mod:`.params`
(RFC 8831, RFC 8841, RFC 8842, RFC 8864, RFC 8261, RFC 8122, TS 26.114 clause 6.2.10).

- :class:`CertificateStore`: the one DTLS certificate of the process.
- :class:`DataChannelEndpointFactory`: binds sockets and builds :class:`DataChannelSession`.
- :class:`DataChannelSession`: start, send, add/close streams, close; reports events.
- :mod:`.ue_side`: the UE half, for test UEs.

Built on aiortc 1.16 / aioice 0.13 (pinned: a few private names are used, see each module).
"""

from avatar_mf.media.certificate import CertificateStore
from avatar_mf.media.endpoint import DataChannelEndpointFactory
from avatar_mf.media.errors import (
    ChannelNotOpenError,
    MediaError,
    MediaParamsError,
    MediaResourceError,
    MessageTooLargeError,
    SessionStateError,
    UnknownStreamError,
)
from avatar_mf.media.events import (
    ChannelClosed,
    ChannelOpened,
    EventHandler,
    MessageReceived,
    SessionClosed,
    SessionConnected,
    SessionEvent,
    SessionEventQueue,
    SessionFailed,
)
from avatar_mf.media.params import (
    LocalIce,
    LocalParams,
    RemoteIce,
    RemoteParams,
    StreamSpec,
    answer_setup,
    as_remote,
    dtls_role,
)
from avatar_mf.media.session import DataChannelSession

__all__ = [
    "CertificateStore",
    "ChannelClosed",
    "ChannelNotOpenError",
    "ChannelOpened",
    "DataChannelEndpointFactory",
    "DataChannelSession",
    "EventHandler",
    "LocalIce",
    "LocalParams",
    "MediaError",
    "MediaParamsError",
    "MediaResourceError",
    "MessageReceived",
    "MessageTooLargeError",
    "RemoteIce",
    "RemoteParams",
    "SessionClosed",
    "SessionConnected",
    "SessionEvent",
    "SessionEventQueue",
    "SessionFailed",
    "SessionStateError",
    "StreamSpec",
    "UnknownStreamError",
    "answer_setup",
    "as_remote",
    "dtls_role",
]
