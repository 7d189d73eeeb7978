"""The seam between the SIP user agent and what a call does with its media.

The user agent (``ua/user_agent.py``) knows SIP: transactions, dialogs, timers. It hands
each accepted offer to a :class:`SessionFactory` and keeps the :class:`MediaSession` it gets
back until the dialog ends. Everything about SDP and data channels lives behind this seam.
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
    #: The subscriber identity: P-Asserted-Identity when present, else From.
    identity: str
    contact: str
    #: The source address the INVITE came from (for media address checks and logs).
    source_host: str


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
