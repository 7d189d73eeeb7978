"""The user agent's counters, read by ``/stats`` and ``/metrics`` (``node/metrics.py``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class UaStats:
    """Counters of one :class:`~avatar_mf.ua.user_agent.UserAgent` since it started."""

    #: INVITEs that created a call (past validation and the dialog cap).
    calls_started: int = 0
    #: Calls whose INVITE was answered 2xx.
    calls_answered: int = 0
    #: Calls whose media could not be set up (the INVITE was refused).
    calls_failed: int = 0
    #: Calls ended, whatever the reason.
    calls_ended: int = 0
    #: 2xx responses re-sent while waiting for their ACK (RFC 3261 13.3.1.4).
    ok_retransmissions: int = 0
    #: Calls ended, by :attr:`avatar_mf.ua.end_reason.CallEnd.label`.
    end_reasons: Counter[str] = field(default_factory=Counter)
    #: The failures among them, by the same label.
    failure_reasons: Counter[str] = field(default_factory=Counter)

    def calls(self) -> dict[str, int]:
        """The call counters as ``/stats`` shows them (its ``calls`` object)."""
        return {
            "calls_started": self.calls_started,
            "calls_answered": self.calls_answered,
            "calls_failed": self.calls_failed,
            "calls_ended": self.calls_ended,
        }
