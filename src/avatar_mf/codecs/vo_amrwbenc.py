"""A ctypes binding of libvo-amrwbenc, the AMR-WB encoder (3GPP TS 26.190 / TS 26.173 based).

FFmpeg (and so PyAV) decodes AMR-WB but has no AMR-WB encoder of its own; Debian ships
VisualOn's encoder as ``libvo-amrwbenc0`` (Apache-2.0). Its whole API (``enc_if.h``)::

    void *E_IF_init(void);
    int   E_IF_encode(void *state, int mode, const short *speech, unsigned char *out, int dtx);
    void  E_IF_exit(void *state);

``E_IF_encode`` takes 320 samples (20 ms at 16 kHz, native-endian int16) and writes one
RFC 4867 section 5 storage-format frame (header octet ``FT<<3 | Q<<2``, then the sorted
speech bits), returning its length; at most 61 octets (mode 8).

:func:`load_vo_amrwbenc` returns the library, or the reason it cannot be used (the registry
then does not offer AMR-WB and logs the reason once).
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np

from avatar_mf.codecs.base import FRAME_SAMPLES, CodecError

LIBRARY = "libvo-amrwbenc.so.0"
_MAX_FRAME = 64


class VoAmrWbEnc:
    """The loaded library; :meth:`open` gives one encoder state."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.E_IF_init.restype = ctypes.c_void_p
        lib.E_IF_init.argtypes = []
        lib.E_IF_encode.restype = ctypes.c_int
        lib.E_IF_encode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
        ]
        lib.E_IF_exit.restype = None
        lib.E_IF_exit.argtypes = [ctypes.c_void_p]
        self._lib = lib

    def open(self) -> VoAmrWbState:
        state = self._lib.E_IF_init()
        if not state:
            raise CodecError("encoder_init", "E_IF_init returned NULL")
        return VoAmrWbState(self._lib, state)


class VoAmrWbState:
    """One encoder instance (keeps the codec's state between frames); freed by :meth:`close`
    or when garbage collected."""

    def __init__(self, lib: ctypes.CDLL, state: int) -> None:
        self._lib = lib
        self._state: int | None = state
        self._out = ctypes.create_string_buffer(_MAX_FRAME)

    def encode(self, pcm20ms: bytes, mode: int, dtx: bool = False) -> bytes:
        """One storage-format frame for 320 samples of s16le PCM in ``mode`` (0-8)."""
        if self._state is None:
            raise CodecError("closed", "encoder closed")
        samples = np.frombuffer(pcm20ms, dtype="<i2")
        if len(samples) != FRAME_SAMPLES:
            raise CodecError("frame_size", f"{len(samples)} samples, expected {FRAME_SAMPLES}")
        if sys.byteorder != "little":
            samples = samples.astype("=i2")
        samples = np.ascontiguousarray(samples)
        n = self._lib.E_IF_encode(self._state, mode, samples.ctypes.data, self._out, int(dtx))
        if not 0 < n <= _MAX_FRAME:
            raise CodecError("encoder", f"E_IF_encode returned {n}")
        return self._out.raw[:n]

    def close(self) -> None:
        if self._state is not None:
            self._lib.E_IF_exit(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


def load_vo_amrwbenc(name: str = LIBRARY) -> VoAmrWbEnc | str:
    """The encoder library, or why it cannot be loaded (a message naming the Debian package)."""
    try:
        lib = ctypes.CDLL(name)
        return VoAmrWbEnc(lib)
    except (OSError, AttributeError) as exc:
        return f"{name} not loadable ({exc}); install the Debian package libvo-amrwbenc0"
