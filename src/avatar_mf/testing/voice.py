"""How well a received avatar's mouth follows the speech that was sent (voice call tests).

:func:`jaw_follows_loudness` is the check the voice-driven animation's call tests make (real
MF, real peers: RTP, the audio data channel, the browser's microphone): the best Pearson
correlation between the received units' ``jawOpen`` and the loudness (RMS) of the sent speech
per unit period, over the offsets the units can have against the speech (the first unit up
to a second before the speech's start to anywhere in it, at least two seconds overlapping).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["AUDIO_ACCEPTED", "jaw_follows_loudness"]

#: The ``/metrics`` sample of the raw audio messages the MF took (:meth:`MfProcess.metric`).
AUDIO_ACCEPTED = 'avatar_mf_audio_channel_messages_total{outcome="accepted"}'


def jaw_follows_loudness(
    jaw: NDArray[np.float64],
    sent: NDArray[np.int16] | NDArray[np.float64],
    *,
    sample_rate: int = 16000,
    frame_rate: int = 30,
) -> float:
    """The best correlation of ``jaw`` (one value per unit) with the RMS of ``sent`` per
    unit period (-1.0 when no offset overlaps enough)."""
    hop = sample_rate // frame_rate
    x = np.asarray(sent, dtype=np.float64)
    rms = np.array([np.sqrt(np.mean(x[i : i + hop] ** 2)) for i in range(0, x.size - hop, hop)])
    overlap = 2 * frame_rate
    best = -1.0
    for lag in range(-frame_rate, rms.size - overlap):
        a = jaw[max(0, -lag) :]
        b = rms[max(0, lag) :]
        n = min(a.size, b.size)
        if n > overlap and a[:n].std() > 0 and b[:n].std() > 0:
            best = max(best, float(np.corrcoef(a[:n], b[:n])[0, 1]))
    return best
