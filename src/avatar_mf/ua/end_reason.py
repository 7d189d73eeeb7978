"""Why a call ended: a bounded :class:`EndReason` plus a detail string (:class:`CallEnd`).

The reason's ``label`` is what metrics (``avatar_mf_calls_ended_total{reason}``,
``avatar_mf_calls_failed_total{reason}``) and the ``reason`` field of the "call ended" log
line carry; :attr:`CallEnd.text` is the free text of that log line and of the BYE's Reason
header (RFC 3326): ``no ACK``, ``refused 488``, ``media failed: setup timeout`` ...
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EndReason(Enum):
    """Value: (label, text template, is a failure). ``{}`` in a template takes the detail."""

    BYE = ("bye", "bye", False)
    CANCELLED = ("cancelled", "cancelled", False)
    NO_ACK = ("no_ack", "no ACK", True)
    #: The INVITE was refused with the status in the detail (``rejected_<status>``).
    REJECTED = ("rejected", "refused {}", True)
    MEDIA_FAILED = ("media_failed", "media failed: {}", True)
    MEDIA_SETUP_FAILED = ("media_setup_failed", "media setup failed", True)
    #: No RTP from the UE for ``media.rtp_timeout`` seconds (its UE vanished).
    MEDIA_TIMEOUT = ("media_timeout", "media timeout", True)
    SESSION_EXPIRED = ("session_expired", "session expired", True)
    #: A refresh answered 408 or 481 (the status in the detail).
    REFRESH_FAILED = ("refresh_failed", "refresh failed ({})", True)
    REFRESH_TIMEOUT = ("refresh_timeout", "refresh timed out", True)
    INVITE_TX_ENDED = ("invite_tx_ended", "INVITE transaction ended", True)
    TRANSPORT_ERROR = ("transport_error", "transport error", True)
    #: The operator dropped the call (the detail, if any, replaces the text).
    OPERATOR = ("operator", "dropped", False)
    SHUTDOWN = ("shutdown", "shutdown", False)
    #: The other leg of a two-leg call ended (the detail: why it did).
    PEER_LEG_ENDED = ("peer_leg_ended", "other leg ended: {}", False)
    #: The second leg of a two-leg call was refused (the status in the detail).
    PEER_LEG_REFUSED = ("peer_leg_refused", "other leg refused {}", False)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def failure(self) -> bool:
        return self.value[2]


#: Labels of the ends that count as failures (``rejected_<status>`` ones too).
FAILURE_LABELS = frozenset(r.label for r in EndReason if r.failure and r is not EndReason.REJECTED)


def is_failure(label: str) -> bool:
    return label in FAILURE_LABELS or label.startswith("rejected")


@dataclass(frozen=True, slots=True)
class CallEnd:
    """One call's end: the reason and its detail (a status, a media failure text, the text
    the operator or shutdown gave)."""

    reason: EndReason
    detail: str = ""

    @property
    def label(self) -> str:
        if self.reason is EndReason.REJECTED:
            status = self.detail[:3]
            return f"rejected_{status}" if status.isdigit() else "rejected"
        return self.reason.label

    @property
    def failure(self) -> bool:
        return self.reason.failure

    @property
    def text(self) -> str:
        template = self.reason.value[1]
        if "{}" in template:
            return template.format(self.detail)
        return self.detail or template
