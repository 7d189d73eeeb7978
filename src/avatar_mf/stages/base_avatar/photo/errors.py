"""Why no avatar could be built from the photos: the face model's codes, as an answer.

:class:`PhotoAvatarError` is a ``ValueError`` (what the base-avatar generation stage catches)
carrying a :class:`~avatar_mf.face.result.FaceError` code -- ``no-face``, ``several-faces``,
``face-too-small``, ``too-dark``, ``too-blurred``, ``unsupported-image``, or a photo's depth
image's ``bad-depth`` (:mod:`.depth`) -- which the UE gets
in its ``error`` message; the photo, not the MF, is at fault (``rejected``), and sending the
same photo again gives the same answer (not ``retryable``).
"""

from __future__ import annotations

from avatar_mf.face.result import FaceError, FaceTrackingError


class PhotoAvatarError(ValueError):
    def __init__(self, code: FaceError | str, message: str, *, photo: int | None = None
                 ) -> None:
        where = "" if photo is None else f"photo {photo + 1}: "
        super().__init__(where + message)
        self.code = str(code)
        self.message = where + message
        self.photo = photo
        self.retryable = False
        self.rejected = True
        self._args = (str(code), message, photo)

    def __reduce__(self) -> tuple[object, ...]:
        # Crosses the worker process's pipe: rebuilt from what made it.
        code, message, photo = self._args
        return (_rebuild, (code, message, photo))

    @classmethod
    def from_tracking(cls, exc: FaceTrackingError, photo: int) -> PhotoAvatarError:
        return cls(exc.code, exc.message, photo=photo)


def _rebuild(code: str, message: str, photo: int | None) -> PhotoAvatarError:
    return PhotoAvatarError(code, message, photo=photo)
