"""Limits on base avatar uploads (transfers towards the MF, TR 26.813 D.1 alternative 2).

One peer must not exhaust the node (issue 9): a transfer offer declares up to
``max_transfer_size`` bytes, and a UE could open many and send nothing. So:

* the receiver (:class:`~avatar_mf.protocol.transfer.TransferReceiver`) holds only the bytes
  that arrived, never the declared size;
* a session runs at most ``max_uploads_per_session`` uploads at once and the node at most
  ``max_uploads_per_node`` (:class:`UploadSlots`, shared by the node's sessions); an offer past
  either is answered ``transfer failed`` ``busy`` (docs/protocol.md section 4);
* an upload that brings no new byte for ``upload_stall_timeout`` seconds, or is not complete
  ``upload_timeout`` seconds after its offer, is failed with ``timeout`` (:func:`deadline`);
* photos for ``avatar:generate`` are kept in the call once complete (issue 14): each at most
  ``max_photo_size`` bytes (a larger offer is answered ``too-large`` before any byte), and all
  the node's sessions together at most ``max_photo_bytes_per_node`` (:class:`PhotoBudget`; a
  photo past it is answered ``transfer failed`` ``busy`` and not kept). A session gives its
  photos' bytes back when it drops one or ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatar_mf.clock import TimerHandle
from avatar_mf.protocol.transfer import TransferReceiver


@dataclass
class UploadSlots:
    """The node's uploads in progress, counted against ``limit`` (0: no limit)."""

    limit: int
    active: int = 0

    def take(self) -> bool:
        """One more upload, if the node has room for it."""
        if self.limit and self.active >= self.limit:
            return False
        self.active += 1
        return True

    def give_back(self) -> None:
        self.active = max(0, self.active - 1)


@dataclass(eq=False)
class Upload:
    """One upload in progress in a session."""

    receiver: TransferReceiver
    #: Clock time of the offer.
    started: float
    #: Clock time the last new byte arrived (the offer's time before the first).
    progressed: float
    timer: TimerHandle | None = None


def deadline(upload: Upload, *, stall_timeout: float, timeout: float) -> tuple[float, str]:
    """When ``upload`` times out if nothing changes, and the reason it would give."""
    stalled = upload.progressed + stall_timeout
    overall = upload.started + timeout
    if overall <= stalled:
        return overall, f"not complete {timeout:g} s after the offer"
    return stalled, f"no data for {stall_timeout:g} s"


@dataclass
class PhotoBudget:
    """The bytes of the photos the node's sessions keep, counted against ``limit`` (0: none)."""

    limit: int
    used: int = 0

    def take(self, size: int) -> bool:
        """Room for ``size`` more bytes, if the node has it."""
        if self.limit and self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used = max(0, self.used - size)
