"""The one error of the avatar format layer: :class:`AvatarFormatError`, with a stable ``code``.

Everything that reads untrusted avatar bytes (:func:`avatar_mf.avatar.container.read_arf`,
:func:`avatar_mf.avatar.glb.read_glb`) raises only this error, whatever the input. ``code`` is a
short stable string (an :class:`ErrorCode` value) that callers may switch on, log, count in
metrics or put in a problem report; ``message`` says what exactly is wrong for a human;
``status_hint`` is the HTTP status a Base Avatar Repository front end (TS 26.264 Annex B) answers
an upload with: 413 for size limits, 400 for everything else. The codes and their meaning are
listed in docs/avatar-format.md.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why an avatar was rejected. Values are stable: they appear in logs and API answers."""

    # ZIP container (ARF).
    NOT_ZIP = "not-zip"
    ZIP_CORRUPT = "zip-corrupt"
    ZIP_UNSUPPORTED = "zip-unsupported"
    ZIP_UNSAFE_NAME = "zip-unsafe-name"
    ZIP_DUPLICATE_ENTRY = "zip-duplicate-entry"
    ZIP_TOO_MANY_ENTRIES = "zip-too-many-entries"
    ZIP_ENTRY_TOO_LARGE = "zip-entry-too-large"
    ZIP_TOO_LARGE = "zip-too-large"
    ZIP_RATIO = "zip-ratio"
    # arf.json.
    ARF_JSON_MISSING = "arf-json-missing"
    ARF_JSON_INVALID = "arf-json-invalid"
    ARF_SCHEMA = "arf-schema"
    ARF_SIGNATURE = "arf-signature"
    ARF_VERSION = "arf-version"
    ARF_DUPLICATE_ID = "arf-duplicate-id"
    ARF_REFERENCE = "arf-reference"
    ARF_UNSUPPORTED = "arf-unsupported"
    ARF_MISMATCH = "arf-mismatch"
    DATA_MISSING = "data-missing"
    DATA_LENGTH_MISMATCH = "data-length-mismatch"
    # GLB (glTF 2.0 binary) inside the container, or given to read_glb directly.
    GLB_HEADER = "glb-header"
    GLB_JSON = "glb-json"
    GLB_UNSUPPORTED = "glb-unsupported"
    GLB_ACCESSOR = "glb-accessor"
    GLB_INDEX_RANGE = "glb-index-range"
    GLB_JOINT_RANGE = "glb-joint-range"
    GLB_NON_FINITE = "glb-non-finite"
    GLB_WEIGHTS = "glb-weights"
    GLB_SKIN = "glb-skin"
    GLB_MORPH_TARGETS = "glb-morph-targets"
    GLB_TOO_LARGE = "glb-too-large"
    GLB_TEXTURE = "glb-texture"


#: Codes answered with 413 Content Too Large; every other code is answered with 400.
_TOO_LARGE = frozenset(
    {
        ErrorCode.ZIP_TOO_MANY_ENTRIES,
        ErrorCode.ZIP_ENTRY_TOO_LARGE,
        ErrorCode.ZIP_TOO_LARGE,
        ErrorCode.GLB_TOO_LARGE,
    }
)


class AvatarFormatError(ValueError):
    """An avatar container or model that cannot be accepted.

    ``code`` is the stable :class:`ErrorCode`; ``message`` the human readable detail;
    ``status_hint`` the HTTP status to answer an upload with (400, or 413 for size limits).
    ``str(err)`` is ``"<code>: <message>"``.
    """

    code: ErrorCode
    message: str
    status_hint: int

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message
        self.status_hint = 413 if code in _TOO_LARGE else 400
        super().__init__(f"{code.value}: {message}")
