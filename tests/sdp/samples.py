"""Shared SDP test inputs and small builders (no pytest fixtures, importable anywhere)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from avatar_mf.sdp import DataChannelAnswerParams, Fingerprint, IceParams

FIXTURES = Path(__file__).parent / "fixtures"
#: Fixtures shared by every layer's tests (the IMS offer of the project brief).
SHARED_FIXTURES = Path(__file__).parents[1] / "fixtures" / "sdp"

IMS_OFFER: bytes = (SHARED_FIXTURES / "ims-avatar-offer-no-ice.sdp").read_bytes()
BROWSER_OFFER: bytes = (FIXTURES / "browser-offer-ice.sdp").read_bytes()

#: 1-based line numbers in IMS_OFFER.
IMS_LINE = {
    "m=audio": 7,
    "m=application": 16,
    "setup": 20,
    "fingerprint": 21,
    "tls-id": 22,
    "dcmap:0": 23,
    "dcmap:1002": 26,
    "dcsa": 27,
    "dcmap:7216": 29,
}

LOCAL_FP = Fingerprint.of_certificate(b"local certificate", "sha-256")
LOCAL_TLS_ID = "mfTlsId0123456789abcdefXYZ"


def text_lines(sdp: bytes) -> list[str]:
    return sdp.decode().split("\r\n")[:-1]


def edit(
    sdp: bytes,
    *,
    replace: dict[str, str | None] | None = None,
    append: list[str] | None = None,
    after: dict[str, list[str]] | None = None,
) -> bytes:
    """Edit an SDP text by whole lines: ``replace`` maps a line prefix to a new line (``None``
    deletes it), ``after`` inserts lines after the first line starting with a prefix."""
    out: list[str] = []
    for line in text_lines(sdp):
        new: str | None = line
        for prefix, repl in (replace or {}).items():
            if line.startswith(prefix):
                new = repl
                break
        if new is not None:
            out.append(new)
        for prefix, extra in (after or {}).items():
            if line.startswith(prefix):
                out.extend(extra)
    out.extend(append or [])
    return ("\r\n".join(out) + "\r\n").encode()


BASE_PARAMS = DataChannelAnswerParams(port=40000, fingerprints=(LOCAL_FP,), tls_id=LOCAL_TLS_ID)


def dc_params(**overrides: Any) -> DataChannelAnswerParams:
    """The test endpoint's answer parameters, with ``overrides``."""
    return dataclasses.replace(BASE_PARAMS, **overrides)


LOCAL_ICE = IceParams(
    ufrag="mfUf",
    pwd="mfPasswordMfPassword1234",
    candidates=("1 1 udp 2130706431 192.0.2.10 40000 typ host",),
    end_of_candidates=True,
    options=("trickle",),
)
