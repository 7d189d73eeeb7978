"""``avatar-mf avatar render``: look at an avatar, a recorded animation, or a spoken text.

::

    avatar-mf avatar render (AVATAR_ID | FILE.arf | FILE.glb) -o OUT.png
                            [--weight NAME=VALUE ...] [--units FILE.aau --at SECONDS]
    avatar-mf avatar render (AVATAR_ID | FILE.arf | FILE.glb) -o OUT.mp4
                            (--units FILE.aau | --text "..." [--language en])
                            [--size 512] [--rate 25] [--yaw DEGREES] [--tail SECONDS]
                            [--background 0xRRGGBB] [--alpha] [--config FILE]
    avatar-mf avatar render --photo-2d PHOTO [--units FILE.aau | --text "..."] [--size 512]
                            -o OUT.(png|mp4)

The avatar is a stored avatar's id (from ``<storage.path>/avatars``), or an ARF container
or GLB file, or with ``--photo-2d`` a photo of a face (JPEG/PNG) animated as a 2D avatar
(TR 26.813 3.4: ``stages/animation/portrait``, its face found by the packaged MediaPipe
tracker; a photo without a usable face fails with the tracker's code, ``no-face``...).
``.png``: a still (4x anti-aliased; ``--alpha`` for a transparent background),
neutral, or with blendshape weights (``--weight jawOpen=0.8``), or the pose of a recorded
animation at ``--at`` seconds. ``.mp4``: H.264 (libx264, yuv420p) at ``--rate`` frames per
second of

* ``--units FILE``: a recorded ARF animation unit stream (ISO/IEC 23090-39 units,
  concatenated: what the test UE writes to ``animation.aau`` with ``--record DIR``), from its
  first unit to its last plus ``--tail`` seconds (the face relaxing to neutral);
* ``--text "..."``: the text spoken by the text animation stage (espeak-ng timing,
  co-articulation, blinks, head motion), with the speech audio muxed in as AAC.

The frames are posed in this process and rendered in the render pool's worker processes
(``[render]`` settings: workers, size, rate, background). Exit codes: 0 written; 1 failed
(unknown avatar, unreadable units, no EGL: the message names the package); 2 usage or an
invalid configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from avatar_mf.cli.base import EXIT_OK, EXIT_USAGE, CliContext, Command
from avatar_mf.config import ConfigError, load_config

EXIT_FAILED = 1
EXIT_CONFIG_INVALID = 2

#: Anti-aliasing samples for stills.
STILL_SAMPLES = 4


class RenderCommandError(Exception):
    """What went wrong, in words for the operator."""


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono signed 16-bit PCM and where it starts on the video's timeline (seconds)."""

    pcm: bytes
    sample_rate: int
    start: float


def _weight(text: str) -> tuple[str, float]:
    name, eq, value = text.partition("=")
    try:
        if not name or not eq:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE, e.g. jawOpen=0.8: {text!r}"
        ) from None


def _colour(text: str) -> int:
    try:
        value = int(text.removeprefix("#"), 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a colour 0xRRGGBB: {text!r}") from None
    if not 0 <= value <= 0xFFFFFF:
        raise argparse.ArgumentTypeError(f"expected a colour 0xRRGGBB: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("avatar", metavar="AVATAR", nargs="?",
                        help="a stored avatar id, or an .arf/.glb file")
    parser.add_argument("--photo-2d", type=Path, metavar="PHOTO", dest="photo_2d",
                        help="instead of AVATAR: a photo of a face, animated as a 2D avatar")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="OUT.png (a still) or OUT.mp4 (a video)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--units", type=Path, metavar="FILE",
                        help="a recorded ARF unit stream (the test UE's animation.aau)")
    source.add_argument("--text", metavar="TEXT", help="text for the avatar to speak (MP4)")
    parser.add_argument("--language", default="en", help="language of --text (default: en)")
    parser.add_argument("--weight", type=_weight, action="append", default=[],
                        metavar="NAME=VALUE", help="a blendshape weight for a still (repeatable)")
    parser.add_argument("--at", type=float, default=None, metavar="SECONDS",
                        help="with --units and a PNG: the pose this long after the first unit")
    parser.add_argument("--size", type=int, metavar="PIXELS", help="width and height")
    parser.add_argument("--rate", type=float, metavar="FPS", help="frames per second (MP4)")
    parser.add_argument("--yaw", type=float, default=0.0, metavar="DEGREES",
                        help="turn the camera towards the avatar's left (35: three-quarter view)")
    parser.add_argument("--tail", type=float, default=0.5, metavar="SECONDS",
                        help="with --units: seconds rendered after the last unit (default 0.5)")
    parser.add_argument("--background", type=_colour, metavar="0xRRGGBB",
                        help="background colour (default: [render] background)")
    parser.add_argument("--alpha", action="store_true", help="transparent background (PNG)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML configuration ([render] defaults, storage.path for ids)")


def build_command() -> Command:
    return Command(
        name="render",
        help="render an avatar to a PNG, or a recorded animation or a text to an MP4",
        description="Render a base avatar (a stored avatar id, or an ARF/GLB file): a PNG "
        "still, or an H.264 MP4 of a recorded ARF unit stream (--units, the test UE's "
        "animation.aau) or of text spoken by the text animation stage (--text, with audio).",
        run=run,
        add_arguments=add_arguments,
    )


# --- the command ------------------------------------------------------------------------------


def run(args: argparse.Namespace, context: CliContext) -> int:
    try:
        config = load_config(args.config, context.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=context.stderr)
        return EXIT_CONFIG_INVALID
    if (args.avatar is None) == (args.photo_2d is None):
        print("avatar-mf avatar render: give AVATAR or --photo-2d PHOTO (one of them)",
              file=context.stderr)
        return EXIT_USAGE
    suffix = args.output.suffix.lower()
    if suffix not in (".png", ".mp4"):
        print("avatar-mf avatar render: -o must end in .png or .mp4", file=context.stderr)
        return EXIT_USAGE
    if suffix == ".mp4" and args.units is None and args.text is None:
        print("avatar-mf avatar render: an MP4 needs --units FILE or --text TEXT",
              file=context.stderr)
        return EXIT_USAGE
    if suffix == ".png" and args.text is not None:
        print("avatar-mf avatar render: --text makes a video: use -o OUT.mp4", file=context.stderr)
        return EXIT_USAGE
    try:
        message = _render(args, config)
    except RenderCommandError as exc:
        print(f"avatar-mf avatar render: {exc}", file=context.stderr)
        return EXIT_FAILED
    print(message, file=context.stdout)
    return EXIT_OK


def _render(args: argparse.Namespace, config: Any) -> str:
    from avatar_mf.arf.units import ArfDecodeError, iter_units
    from avatar_mf.avatar.errors import AvatarFormatError
    from avatar_mf.render.errors import RenderUnavailable
    from avatar_mf.render.scene import Framing, RenderSettings
    from avatar_mf.stages.animation.avatar_rig import load_avatar
    from avatar_mf.stages.animation.timeline import AnimatorSettings

    render_config = config.render
    size = args.size if args.size is not None else render_config.even_size
    rate = args.rate if args.rate is not None else render_config.rate
    if not (16 <= size <= 4096) or not (1.0 <= rate <= 60.0):
        raise RenderCommandError("--size must be 16..4096 and --rate 1..60")
    size -= size % 2
    colour = args.background if args.background is not None else render_config.background
    background = ((colour >> 16 & 0xFF) / 255, (colour >> 8 & 0xFF) / 255, (colour & 0xFF) / 255)
    still = args.output.suffix.lower() == ".png"
    settings = RenderSettings(
        width=size, height=size, background=background,
        alpha=args.alpha or (still and render_config.alpha),
        samples=STILL_SAMPLES if still else _samples(render_config.samples),
        framing=Framing(yaw=args.yaw),
    )
    avatar: Any
    if args.photo_2d is not None:
        avatar = _portrait(args.photo_2d)
    else:
        data = _avatar_bytes(args.avatar, config)
        try:
            avatar = load_avatar(data)
        except AvatarFormatError as exc:
            raise RenderCommandError(f"{args.avatar}: not a usable avatar: {exc}") from exc
    animator = avatar.animator(
        AnimatorSettings(relax_after=render_config.relax_after,
                         relax_time=render_config.relax_time, keep=3600.0)
    )
    audio: Audio | None = None
    start = end = 0.0
    if args.units is not None:
        try:
            units = list(iter_units(args.units.read_bytes()))
        except OSError as exc:
            raise RenderCommandError(f"cannot read {args.units}: {exc.strerror}") from exc
        except ArfDecodeError as exc:
            raise RenderCommandError(f"{args.units}: not an ARF unit stream: {exc}") from exc
        times = [t for unit in units if (t := animator.feed(unit)) is not None]
        if not times:
            raise RenderCommandError(f"{args.units}: no unit this avatar can use")
        start, end = min(times), max(times) + max(0.0, args.tail)
    elif args.text is not None:
        audio, end = _speak(args.text, args.language, rate, animator)
    try:
        if still:
            at = start + (args.at or 0.0) if args.units is not None else None
            return _still(args, avatar, animator, settings, at, render_config)
        frames = int(math.floor((end - start) * rate + 1e-9)) + 1
        return _video(args, avatar, animator, settings, start, frames, rate, audio,
                      render_config)
    except RenderUnavailable as exc:
        raise RenderCommandError(exc.message) from exc


def _samples(value: int) -> int:
    return max(s for s in (0, 1, 2, 4, 8) if s <= value)


def _portrait(path: Path) -> Any:
    from avatar_mf.face import FaceModelUnavailable, FaceTrackingError
    from avatar_mf.stages.animation.portrait import load_portrait

    try:
        return load_portrait(path.read_bytes())
    except OSError as exc:
        raise RenderCommandError(f"cannot read {path}: {exc.strerror}") from exc
    except FaceTrackingError as exc:
        raise RenderCommandError(f"{path}: {exc.code}: {exc.message}") from exc
    except FaceModelUnavailable as exc:
        raise RenderCommandError(f"{path}: {exc}") from exc


def _avatar_bytes(name: str, config: Any) -> bytes:
    path = Path(name)
    if path.is_file():
        return path.read_bytes()
    from avatar_mf.storage.errors import StorageError
    from avatar_mf.storage.store import FilesystemStore, avatar_root

    async def fetch() -> bytes:
        store = FilesystemStore(avatar_root(config.storage.path))
        return await store.get_blob(name)

    try:
        return asyncio.run(fetch())
    except StorageError as exc:
        raise RenderCommandError(f"{name}: no such file, and {exc.message}") from exc


def _speak(text: str, language: str, rate: float, animator: Any) -> tuple[Audio, float]:
    from avatar_mf.arf.units import decode_unit
    from avatar_mf.stages.animation_data.espeak import SpeechEngineUnavailable, clean_text
    from avatar_mf.stages.animation_data.text_animation import TextToAnimation

    planner = TextToAnimation()
    try:
        speech = planner.engine.synthesize(text, language=language, audio=True)
    except SpeechEngineUnavailable as exc:
        raise RenderCommandError(str(exc)) from exc
    except ValueError as exc:
        raise RenderCommandError(f"--text: {exc}") from exc
    details = planner.plan_speech(speech, key=clean_text(text), rate=rate)
    for timed in details.plan.units:
        unit = decode_unit(timed.unit)
        animator.feed(unit)
    audio = Audio(speech.audio or b"", speech.sample_rate, planner.lead_in)
    return audio, max(details.plan.duration - 1.0 / rate, 0.0)


def _poses(avatar: Any, animator: Any, start: float, frames: int, rate: float
           ) -> Iterator[tuple[Any, Any]]:
    for index in range(frames):
        yield avatar.rig.pose(animator.sample(start + index / rate))


def _still(args: argparse.Namespace, avatar: Any, animator: Any, settings: Any,
           at: float | None, render_config: Any) -> str:
    from avatar_mf.render.inline import InlineRenderer
    from avatar_mf.render.png import encode_png
    from avatar_mf.stages.animation.posing import Pose

    if at is not None:
        pose = animator.sample(at)
    else:
        pose = avatar.rig.neutral()
    weights = pose.weights.copy()
    names = avatar.model.target_names
    for name, value in args.weight:
        if name not in names:
            raise RenderCommandError(f"--weight: the avatar has no blendshape {name!r}")
        weights[names.index(name)] = value
    positions, normals = avatar.rig.pose(Pose(weights, pose.locals, pose.landmarks))
    renderer = InlineRenderer()
    key = renderer.add_mesh(avatar.mesh)
    picture = asyncio.run(renderer.render(key, positions, normals, settings)).rgba
    image = picture if settings.alpha else np.ascontiguousarray(picture[..., :3])
    args.output.write_bytes(encode_png(image))
    return f"{args.output}: {settings.width}x{settings.height} PNG"


def _video(args: argparse.Namespace, avatar: Any, animator: Any, settings: Any, start: float,
           frames: int, rate: float, audio: Audio | None, render_config: Any) -> str:
    import av

    from avatar_mf.render.pool import RenderPool

    pool = RenderPool(render_config.workers or None, threads=render_config.threads)
    pool.start()
    container = av.open(str(args.output), "w", format="mp4")
    try:
        fps = Fraction(rate).limit_denominator(1001)
        video = container.add_stream("libx264", rate=fps)
        video.width = settings.width
        video.height = settings.height
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "20", "preset": "veryfast"}
        sound = None
        if audio is not None and audio.pcm:
            sound = container.add_stream("aac", rate=audio.sample_rate)
            sound.layout = "mono"
        key = pool.add_mesh(avatar.mesh)
        window: deque[Any] = deque()
        depth = pool.workers * 2
        written = 0

        def write(frame: Any) -> None:
            nonlocal written
            with frame:
                picture = av.VideoFrame.from_ndarray(frame.rgba, format="rgba")
            out = picture.reformat(format="yuv420p")
            out.pts = written
            out.time_base = Fraction(1) / fps
            for packet in video.encode(out):
                container.mux(packet)
            written += 1

        for positions, normals in _poses(avatar, animator, start, frames, rate):
            window.append(pool.submit(key, positions, normals, settings))
            while len(window) >= depth:
                write(window.popleft().result())
        while window:
            write(window.popleft().result())
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None and audio is not None:
            _write_audio(container, sound, audio)
    finally:
        container.close()
        pool.close()
    extra = ", AAC audio" if audio is not None and audio.pcm else ""
    return (f"{args.output}: {written} frames, {settings.width}x{settings.height}, "
            f"{float(rate):g} fps H.264{extra}")


def _write_audio(container: Any, stream: Any, audio: Audio) -> None:
    import av

    lead = int(round(audio.start * audio.sample_rate))
    pcm = np.concatenate([np.zeros(lead, dtype=np.int16),
                          np.frombuffer(audio.pcm, dtype="<i2").astype(np.int16)])
    chunk = 1024
    for offset in range(0, len(pcm), chunk):
        part = pcm[offset : offset + chunk]
        frame = av.AudioFrame.from_ndarray(part[None, :], format="s16", layout="mono")
        frame.sample_rate = audio.sample_rate
        frame.pts = offset
        frame.time_base = Fraction(1, audio.sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
