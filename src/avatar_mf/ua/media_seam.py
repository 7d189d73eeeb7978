"""The seam between the SIP user agent and what a call does with its media.

The user agent (``ua/user_agent.py``) knows SIP: transactions, dialogs, timers. It hands
each accepted offer to a :class:`SessionFactory` and keeps the :class:`MediaSession` it gets
back until the dialog ends. Everything about SDP and data channels lives behind this seam.

For a two-leg call (``ua/b2bua.py``) the MF is also the offerer of the second leg: an
:class:`OfferFactory` makes the MF's own offer (:class:`OfferSession`) and takes the answer
that comes back in the 2xx (RFC 3264 sections 5 and 6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the user agent knows about a call when it asks for a media session."""

    call_id: str
    request_uri: str
    from_uri: str
    to_uri: str
    #: The subscriber identity: P-Asserted-Identity from a peer configured as asserting it
    #: (``asserted_identity_peers``), else From.
    identity: str
    contact: str
    #: The source address the INVITE came from (for media address checks and logs).
    source_host: str
    #: The avatar room the call joins; empty: the room its Request-URI names. Both legs of a
    #: two-leg call carry the name of the room made for the pair.
    room: str = ""
    #: ``identity`` came from a trusted P-Asserted-Identity (RFC 3325 9.1), not from From.
    asserted: bool = False


class MediaSession(Protocol):
    """The media half of one call."""

    @property
    def local_sdp(self) -> bytes:
        """The current SDP answer."""
        ...

    def answer_sent(self) -> None:
        """The 2xx carrying the initial answer was handed to the transaction layer: start the
        association. Called once per call, never for a call CANCELled or refused."""
        ...

    async def renegotiate(self, offer: bytes) -> bytes:
        """Answer a re-offer (re-INVITE, UPDATE); raises SipError (488) to refuse it."""
        ...

    async def close(self) -> None:
        """Release every resource; idempotent."""
        ...


#: Called by a media session that fails on its own (for example no DTLS within the setup
#: timeout): the user agent ends the call with BYE.
FailureCallback = Callable[[str], None]


class SessionFactory(Protocol):
    async def create(
        self, call: CallInfo, offer: bytes, on_failure: FailureCallback
    ) -> MediaSession:
        """Answer an initial offer. Raises SipError (400 for bad SDP, 488 if unacceptable)."""
        ...


class OfferSession(MediaSession, Protocol):
    """The media half of a leg the MF calls out on: ``local_sdp`` is the MF's offer until the
    answer is accepted, then the MF's current description."""

    async def accept_answer(self, answer: bytes, contact: str = "") -> None:
        """Take the answer of the 2xx (RFC 3264 section 5) and its Contact (the callee's
        feature tags); raises SipError (488) when the answer is unusable (no data channel
        m-line, refused, malformed)."""
        ...


class OfferFactory(Protocol):
    async def create_offer(self, call: CallInfo, on_failure: FailureCallback) -> OfferSession:
        """Make the MF's offer for an outgoing leg; ``answer_sent`` starts its association once
        the answer is accepted and the ACK sent."""
        ...
