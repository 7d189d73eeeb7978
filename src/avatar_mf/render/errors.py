"""The renderer's one error: rendering cannot be had on this machine, and what to install."""

from __future__ import annotations

#: Debian packages that give moderngl an EGL context on Mesa (llvmpipe without a GPU).
EGL_PACKAGES = ("libegl1", "libegl-mesa0", "libgl1-mesa-dri")


class RenderUnavailable(RuntimeError):
    """No offscreen OpenGL here. ``code`` is ``render-unavailable``; not retryable (the same
    machine will not grow a driver); the message names what is missing."""

    code = "render-unavailable"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def explain(exc: BaseException) -> RenderUnavailable:
    """A :class:`RenderUnavailable` saying which package to install for ``exc``, an error
    from importing moderngl or creating its EGL context."""
    text = str(exc)
    packages = " ".join(EGL_PACKAGES)
    if isinstance(exc, ImportError) and "moderngl" in text:
        return RenderUnavailable(f"moderngl is not installed (pip install moderngl): {text}")
    if "libEGL" in text or "egl" in text.lower():
        return RenderUnavailable(
            f"no EGL: install the Debian packages {packages} (apt-get install {packages}): {text}"
        )
    return RenderUnavailable(
        f"cannot create an offscreen OpenGL 3.3 context ({text}); on Debian install {packages}"
    )
