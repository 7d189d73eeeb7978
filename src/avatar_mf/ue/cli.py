"""``avatar-mf ue call <sip-uri>``: place one test call and report it as JSON.

::

    avatar-mf ue call sip:room1@127.0.0.1:5060 [--transport udp|tcp] [--no-ice]
        [--from sip:ue1@127.0.0.1] [--duration S] [--record DIR] [--get PATH ...]
        [--hello] [--upload FILE] [--select AVATAR_ID] [--say TEXT] [--scene-get]
        [--send STREAM:TEXT ...] [--send-hex STREAM:HEX ...] [--register USER]

The call offers the default streams (bootstrap 0 and 10, 1000 ``3gpp-ar-metadata``, 1002
``3gpp-ar-animation``; ``--stream`` replaces them) and waits until every accepted channel is
open. Then, in this order: the ``--get`` requests on bootstrap channel 0 (HTTP, TS 26.114);
with any avatar option, the avatar protocols of docs/protocol.md
(:class:`~avatar_mf.ue.avatar.AvatarClient`): hello -> capabilities first, ``--upload`` (a base
avatar to the MF: ``.glb`` is ``model/gltf-binary``, ``.arf``/``.zip`` an ARF container),
``--select``, ``--say``, ``--scene-get``; then the ``--send`` messages. It stays up
``--duration`` seconds taking what comes (transfer offers are accepted and digest-checked,
animation units decoded), then hangs up. ``--record DIR`` writes everything received
(:class:`~avatar_mf.ue.recorder.Recorder`: ``bootstrap/``, ``metadata.jsonl``,
``animation.aau`` and ``animation.jsonl``, ``avatars/``).

Progress goes to stderr; the last stdout line is a JSON summary: setup time, channels opened,
messages and bytes per channel, errors, and under ``avatar`` the messages received by type,
the transfers with their digests and the animation units received by type. Exit status 0 when
the call was answered, every accepted channel opened and nothing failed (no refusal, failed
transfer or error message either); 1 otherwise; 2 for bad arguments.

The MF is reached at the URI's host and port (``--proxy`` overrides), over the URI's
``transport`` parameter unless ``--transport`` is given. ``--register USER`` first registers
``sip:USER@<proxy>`` with that proxy (a registrar such as the lab's Kamailio, see
:mod:`avatar_mf.ue.listener`), places the call from the registered endpoint and removes the
binding afterwards: ``avatar-mf ue call sip:ue2@127.0.0.1:5070 --register ue1``.

For the main CLI: :func:`add_arguments` and :func:`run` fit ``avatar_mf.cli.Command``
(``run(args, context)``, where context has ``stdout`` and ``stderr``); :func:`add_parser` adds
the ``call`` subcommand to an argparse subparsers object directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from avatar_mf.sdp.datachannel import DcMap
    from avatar_mf.ue.avatar import AvatarClient, ReceivedMessage
    from avatar_mf.ue.call import UeCall
    from avatar_mf.ue.dc_audio import DcAudioSender
    from avatar_mf.ue.listener import UeListener
    from avatar_mf.ue.recorder import Recorder
    from avatar_mf.ue.rtp_audio import UeAudio
    from avatar_mf.ue.rtp_video import UeVideo

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "add_parser", "run"]

HELP = "place a test call with data channels (and the avatar protocols) and report it as JSON"
DESCRIPTION = (
    "Call the MF as a UE offering WebRTC data channels (ICE, or plain DTLS over UDP with "
    "--no-ice), wait until every accepted channel is open, run the --get requests and the "
    "avatar steps (hello, --upload, --select, --say, --scene-get), send the --send messages, "
    "stay up --duration seconds taking what comes (--record DIR keeps it), hang up, and print "
    "a JSON summary as the last stdout line. Exits 0 when the call was answered, every "
    "accepted channel opened and nothing failed."
)

#: The Contact feature tag of an avatar-assisted UE (TS 26.264 7.3.2).
ASSISTED_TAG = ';+sip.3gpp-avatar-support="avatar-assisted"'
#: Where the product's head framing puts the mouth and jaw (left, top, right, bottom as
#: fractions of the picture): the region whose first movement is the video onset of the
#: A/V skew the summary reports.
RENDER_MOUTH = (0.3, 0.6, 0.7, 0.95)
#: The A/V skew is reported only when the video ran this long before the speech began.
SKEW_REST = 0.3
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Streams(Protocol):
    """What :func:`run` needs from the CLI context (``avatar_mf.cli.CliContext`` has it)."""

    @property
    def stdout(self) -> TextIO: ...

    @property
    def stderr(self) -> TextIO: ...


class _Std:
    @property
    def stdout(self) -> TextIO:
        return sys.stdout

    @property
    def stderr(self) -> TextIO:
        return sys.stderr


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _u16(text: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFF:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {text!r}")
    return int(text)


def _stream_id(text: str) -> int:
    if not text.isdigit() or int(text) > 65534:
        raise argparse.ArgumentTypeError(f"stream id must be 0..65534, got {text!r}")
    return int(text)


def _message(text: str) -> tuple[int, str]:
    sid, sep, data = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected STREAM:TEXT, got {text!r}")
    return _stream_id(sid), data


def _hex_message(text: str) -> tuple[int, bytes]:
    sid, data = _message(text)
    try:
        return sid, bytes.fromhex(data)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {data!r}") from None


def _path(text: str) -> str:
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"an absolute path without spaces, e.g. /, not {text!r}")
    return text


def _stream(text: str) -> tuple[int, str, str | None]:
    sid, _, rest = text.partition(":")
    subprotocol, _, label = rest.partition(":")
    return _stream_id(sid), subprotocol, label or None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ue call``."""
    parser.add_argument("uri", metavar="SIP-URI", help="whom to call, e.g. sip:avatar@127.0.0.1")
    parser.add_argument(
        "--transport",
        choices=("udp", "tcp"),
        help="SIP transport (default: the URI's transport parameter, else udp)",
    )
    parser.add_argument(
        "--no-ice",
        dest="ice",
        action="store_false",
        help="offer no ICE: DTLS straight over UDP, as IMS UEs do",
    )
    parser.add_argument(
        "--duration",
        type=_non_negative,
        default=1.0,
        metavar="S",
        help="seconds to stay in the call once the channels are open (default: %(default)s)",
    )
    parser.add_argument(
        "--send",
        type=_message,
        action="append",
        default=[],
        metavar="STREAM:TEXT",
        help="send TEXT as a string message on STREAM once open (repeatable)",
    )
    parser.add_argument(
        "--send-hex",
        type=_hex_message,
        action="append",
        default=[],
        metavar="STREAM:HEX",
        help="send a binary message on STREAM once open (repeatable)",
    )
    parser.add_argument(
        "--stream",
        type=_stream,
        action="append",
        default=[],
        metavar="ID:SUBPROTOCOL[:LABEL]",
        help="offer this stream instead of the defaults 0, 10 (http), 1000 "
        "(3gpp-ar-metadata), 1002 (3gpp-ar-animation) (repeatable)",
    )
    reliability = parser.add_mutually_exclusive_group()
    reliability.add_argument(
        "--max-time",
        type=_u16,
        metavar="MS",
        help="offer the 3gpp-ar-animation streams partially reliable: a=dcmap max-time=MS "
        "(RFC 8864 5.1.1; TS 26.264's example is 150): what is not delivered within MS "
        "milliseconds is abandoned, not retransmitted",
    )
    reliability.add_argument(
        "--max-retr",
        type=_u16,
        metavar="N",
        help="offer the 3gpp-ar-animation streams partially reliable: a=dcmap max-retr=N "
        "(at most N retransmissions)",
    )
    parser.add_argument(
        "--proxy",
        metavar="HOST[:PORT]",
        help="where to send the SIP requests (default: the URI's host and port)",
    )
    parser.add_argument(
        "--local-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="local address for SIP and media (default: %(default)s)",
    )
    parser.add_argument(
        "--audio", action="store_true", help="put an AMR-WB audio m-line first (VoLTE style)"
    )
    media = parser.add_argument_group(
        "RTP audio: IMS style (RTP/AVP, no ICE) or WebRTC style (--webrtc-audio); docs/media.md"
    )
    media.add_argument(
        "--audio-in",
        type=str,
        metavar="FILE.wav",
        help="offer RTP audio and send this WAV (16-bit PCM, any rate; resampled to 16 kHz) "
        "as 20 ms packets, then silence",
    )
    media.add_argument(
        "--audio-dc",
        type=Path,
        metavar="FILE.wav",
        help="send this WAV (16-bit PCM, any rate; resampled to 16 kHz) without RTP, as raw "
        "audio messages on an avatar-mf-audio data channel (stream 1006, unordered, "
        "max-retr=0; docs/protocol.md section 7), 20 ms each, after a hello agreeing voice; "
        "the call lasts until it is sent",
    )
    media.add_argument(
        "--audio-out",
        type=str,
        metavar="FILE.wav",
        help="offer RTP audio and record what the MF sends to this WAV (16 kHz mono)",
    )
    media.add_argument(
        "--audio-codecs",
        default=None,
        metavar="NAMES",
        help="codecs offered, best first, comma-separated (default: AMR-WB,PCMU; "
        "with --webrtc-audio: opus,PCMU)",
    )
    media.add_argument(
        "--webrtc-audio",
        action="store_true",
        help="offer the audio WebRTC style: UDP/TLS/RTP/SAVPF, SRTP, BUNDLEd with the data "
        "channel (needs ICE)",
    )
    video = parser.add_argument_group("network-rendered avatar video (docs/rendering.md)")
    video.add_argument(
        "--avatar-assisted",
        action="store_true",
        help='Contact +sip.3gpp-avatar-support="avatar-assisted" (TS 26.264): the MF animates '
        "and renders the others' avatars for this UE and sends them as RTP video",
    )
    video.add_argument(
        "--render",
        type=Path,
        metavar="DIR",
        help="receive the MF's video (implies --avatar-assisted, offers RTP video and audio) "
        "and save it as DIR/video.mp4 with the audio received",
    )
    video.add_argument(
        "--video-codec",
        choices=("H264", "VP8"),
        default="H264",
        help="the video codec offered with --render or --webrtc-video (default: %(default)s)",
    )
    video.add_argument(
        "--webrtc-video",
        action="store_true",
        help="offer video WebRTC style: UDP/TLS/RTP/SAVPF, SRTP, BUNDLEd with the data channel "
        "(needs ICE); with --render it receives the MF's video, otherwise it sends test "
        "pictures at 25 fps for --duration",
    )
    parser.add_argument(
        "--fingerprint-hash",
        choices=("sha-1", "sha-256", "sha-384", "sha-512"),
        default="sha-256",
        help="hash of the UE's a=fingerprint (IMS UEs often use sha-1; default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="S",
        help="seconds allowed for the answer, for the channels to open and for each avatar step "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--from",
        dest="from_uri",
        metavar="SIP-URI",
        help="the caller's identity (From), e.g. sip:ue1@127.0.0.1: the avatar owner the MF "
        "authorises (default: sip:ue@<local host>)",
    )
    parser.add_argument(
        "--register",
        metavar="USER",
        help="first REGISTER sip:USER@<proxy> with the proxy (the lab's Kamailio, --proxy or "
        "the URI's host) and place the call from that registered endpoint; From is that AOR",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        metavar="BYTES",
        help="the UE's a=max-message-size (e.g. 1024, as IMS UEs; default: the stack's)",
    )
    add_avatar_arguments(parser)


def add_avatar_arguments(parser: argparse.ArgumentParser) -> None:
    """The avatar step options (``--record``, ``--get``, ``--hello``, ``--upload``,
    ``--select``, ``--say``, ``--language``, ``--scene-get``), shared with ``ue listen``."""
    avatar = parser.add_argument_group("avatar protocols (docs/protocol.md)")
    avatar.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="write everything received into DIR: bootstrap/, metadata.jsonl, animation.aau "
        "(+ animation.jsonl index), avatars/",
    )
    avatar.add_argument(
        "--get",
        type=_path,
        action="append",
        default=[],
        metavar="PATH",
        help="HTTP GET PATH on bootstrap channel 0 (e.g. /: the data channel app; repeatable)",
    )
    avatar.add_argument(
        "--hello", action="store_true", help="send hello, wait for capabilities (implied below)"
    )
    avatar.add_argument(
        "--upload",
        type=Path,
        metavar="FILE",
        help="upload FILE as this UE's base avatar (.glb, or an ARF container .arf/.zip)",
    )
    avatar.add_argument("--select", metavar="AVATAR_ID", help="select a stored avatar")
    avatar.add_argument("--say", metavar="TEXT", help="send TEXT for text-driven animation")
    avatar.add_argument(
        "--language", default="en-US", help="BCP 47 language of --say (default: %(default)s)"
    )
    avatar.add_argument("--scene-get", action="store_true", help="get the room's scene description")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``call`` to an argparse subparsers object (``parser.add_subparsers()``); the parsed
    arguments carry ``run``. ``subparsers`` is typed Any: argparse's class is private."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "call", help=HELP, description=DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def _target(args: argparse.Namespace) -> tuple[str, int, str]:
    """(MF host, MF port, transport) from the URI and the options; ValueError if unusable."""
    from avatar_mf.sip.errors import SipParseError
    from avatar_mf.sip.headers import split_host_port
    from avatar_mf.sip.uri import parse_sip_uri

    try:
        uri = parse_sip_uri(args.uri)
        transport = args.transport or uri.transport or "udp"
        host, port = uri.host, uri.port
        if args.proxy:
            host, port = split_host_port(args.proxy)
    except SipParseError as exc:
        raise ValueError(f"{exc.reason}: {args.uri if not args.proxy else args.proxy}") from None
    if transport not in ("udp", "tcp"):
        raise ValueError(f"unsupported transport {transport!r} (udp or tcp)")
    if getattr(args, "webrtc_audio", False) and not args.ice:
        raise ValueError("--webrtc-audio needs ICE (drop --no-ice)")
    if getattr(args, "webrtc_video", False) and not args.ice:
        raise ValueError("--webrtc-video needs ICE (drop --no-ice)")
    return host.strip("[]"), port or 5060, transport


def _streams(args: argparse.Namespace) -> tuple[DcMap, ...]:
    from avatar_mf.sdp.datachannel import DcMap
    from avatar_mf.ue.offer import DEFAULT_STREAMS, with_partial_reliability

    streams = DEFAULT_STREAMS
    if args.stream:
        streams = tuple(
            DcMap(sid, label=label, subprotocol=subprotocol or None)
            for sid, subprotocol, label in args.stream
        )
    streams = with_partial_reliability(streams, max_time=args.max_time, max_retr=args.max_retr)
    if getattr(args, "audio_dc", None) is not None:
        from avatar_mf.ue.dc_audio import AUDIO_STREAM

        if all(s.stream_id != AUDIO_STREAM.stream_id for s in streams):
            streams = (*streams, AUDIO_STREAM)
    return streams


def _show(data: str | bytes) -> str:
    if isinstance(data, str):
        return repr(data[:80]) + ("..." if len(data) > 80 else "")
    return f"<{len(data)} bytes {data[:16].hex()}{'...' if len(data) > 16 else ''}>"


def _avatar_wanted(args: argparse.Namespace) -> bool:
    return bool(
        args.hello
        or args.upload
        or args.select
        or args.say
        or args.scene_get
        or args.record
        or getattr(args, "audio_dc", None)
    )


def _content_type(path: Path) -> str:
    from avatar_mf.protocol.names import CONTENT_TYPE_ARF_ZIP, CONTENT_TYPE_GLB

    return CONTENT_TYPE_ARF_ZIP if path.suffix.lower() in (".arf", ".zip") else CONTENT_TYPE_GLB


def _progress(err: TextIO) -> Callable[[ReceivedMessage], None]:
    def show(received: ReceivedMessage) -> None:
        message = received.message
        detail = getattr(message, "code", None) or getattr(message, "avatar_id", None) or ""
        name = message.type.rsplit("v1:", 1)[-1]
        print(f"rx {received.stream_id}: {name} {detail}".rstrip(), file=err)

    return show


async def _bootstrap(
    args: argparse.Namespace,
    call: UeCall,
    recorder: Recorder | None,
    err: TextIO,
    problems: list[str],
) -> list[dict[str, object]]:
    from avatar_mf.ue.bootstrap import BootstrapClient, HttpReply

    if 0 not in call.accepted_ids:
        problems.append("--get: bootstrap stream 0 was not accepted")
        return []

    def keep(stream_id: int, path: str, reply: HttpReply, at: float) -> None:
        if recorder is not None:
            recorder.bootstrap(stream_id, path, reply, at=at)

    client = BootstrapClient(call, 0, on_reply=keep)
    out: list[dict[str, object]] = []
    try:
        for path in args.get:
            try:
                reply = await client.get(path, args.timeout)
            except (TimeoutError, ValueError, ConnectionError) as exc:
                problems.append(f"GET {path}: {exc}")
                continue
            print(
                f"GET {path}: {reply.status} {reply.content_type} {len(reply.body)} bytes", file=err
            )
            out.append(
                {
                    "path": path,
                    "status": reply.status,
                    "content_type": reply.content_type,
                    "bytes": len(reply.body),
                }
            )
            if reply.status >= 400:
                problems.append(f"GET {path}: {reply.status} {reply.reason}")
    finally:
        client.close()
    problems.extend(client.problems)
    return out


def hello_inputs(args: argparse.Namespace) -> tuple[str, ...]:
    """The animation inputs this UE's hello asks for (docs/protocol.md): ``voice`` when it sends
    its voice (``--audio-in`` as RTP, ``--audio-dc`` on the audio data channel: the MF animates
    from a voice only when the hello agrees it), ``text`` when it sends text (``--say``) or has
    nothing else to drive its avatar with."""
    voice = (
        getattr(args, "audio_in", None) is not None or getattr(args, "audio_dc", None) is not None
    )
    text = bool(getattr(args, "say", None)) or not voice
    return (("text",) if text else ()) + (("voice",) if voice else ())


async def _avatar_steps(
    args: argparse.Namespace, client: AvatarClient, err: TextIO, problems: list[str]
) -> None:
    from avatar_mf.protocol.metadata import AvatarRefused
    from avatar_mf.ue.avatar import AvatarProtocolError

    timeout = args.timeout
    try:
        assisted = getattr(args, "avatar_assisted", False) or getattr(args, "render", None)
        # An avatar-assisted UE asks the MF to animate (a hello asking "ue" would be refused
        # as a conflict with its Contact tag, TS 26.264 7.3.2).
        inputs = hello_inputs(args)
        caps = await client.hello(
            timeout=timeout, animation="network" if assisted else "ue", animation_inputs=inputs
        )
        print(
            f"capabilities: session {caps.session_id}, animation data {caps.animation_data}",
            file=err,
        )
        if args.upload is not None:
            payload = await asyncio.to_thread(args.upload.read_bytes)
            transfer = await client.upload(
                payload,
                avatar_id=args.upload.stem,
                content_type=_content_type(args.upload),
                timeout=max(timeout, 30.0),
            )
            print(
                f"upload {transfer.state}: {transfer.total_size} bytes, sha256 {transfer.digest}"
                f" stored as {transfer.stored_avatar_id}",
                file=err,
            )
        if args.select:
            reply = await client.select(args.select, timeout=timeout)
            if isinstance(reply, AvatarRefused):
                problems.append(f"avatar {args.select} refused: {reply.code} {reply.reason or ''}")
            print(f"select {args.select}: {reply.type.rsplit(':', 1)[-1]}", file=err)
        if args.say:
            client.say(args.say, args.language)
        if args.scene_get:
            scene = await client.scene_get(timeout=timeout)
            print(f"scene version {scene.version}: {json.dumps(scene.document)[:200]}", file=err)
    except AvatarProtocolError as exc:
        problems.append(f"MF error: {exc}")
    except TimeoutError as exc:
        problems.append(str(exc))
    except (OSError, ValueError) as exc:  # --upload: unreadable or unusable file
        problems.append(f"{type(exc).__name__}: {exc}")


async def _call(args: argparse.Namespace, err: TextIO) -> dict[str, object]:
    from avatar_mf.ue.listener import UeListener

    if not args.register:
        return await _place(args, None, err)
    host, port, transport = _target(args)
    listener = await UeListener.open(
        host,
        port,
        user=args.register,
        transport="tcp" if transport == "tcp" else "udp",
        local_host=args.local_host,
        setup_timeout=args.timeout,
    )
    try:
        try:
            status = await listener.registered(args.timeout)
        except (TimeoutError, ConnectionError) as exc:
            print(f"registration failed: {exc}", file=err)
            return {"ok": False, "target": args.uri, "errors": [f"REGISTER: {exc}"]}
        print(f"registered {listener.aor} for {status.granted} s", file=err)
        return await _place(args, listener, err)
    finally:
        await listener.close()


async def _place(
    args: argparse.Namespace, listener: UeListener | None, err: TextIO
) -> dict[str, object]:
    from avatar_mf.ue.avatar import AvatarClient
    from avatar_mf.ue.call import UeCall, UeCallError
    from avatar_mf.ue.recorder import Recorder

    host, port, transport = _target(args)
    loop = asyncio.get_running_loop()
    rtp_audio = _rtp_audio(args)
    rtp_video = _rtp_video(args)
    options: dict[str, Any] = {
        "rtp_audio": rtp_audio,
        "rtp_video": rtp_video,
        "ice": args.ice,
        "streams": _streams(args),
        "audio": args.audio,
        "fingerprint_algorithm": args.fingerprint_hash,
        "max_message_size": args.max_message_size,
        "answer_timeout": args.timeout,
        "setup_timeout": args.timeout,
    }
    if (args.avatar_assisted or args.render is not None) and listener is None:
        from avatar_mf.ue.call import DATACHANNEL_FEATURE_TAG

        options["contact_feature_tags"] = DATACHANNEL_FEATURE_TAG + ASSISTED_TAG
    if args.from_uri is not None or listener is None:
        options["from_uri"] = args.from_uri
    if listener is not None:  # from the registered endpoint, through the registrar
        call = listener.dial(args.uri, **options)
    else:
        call = UeCall.dial(
            args.uri,
            host,
            port,
            transport="tcp" if transport == "tcp" else "udp",
            local_host=args.local_host,
            **options,
        )
    recorder = Recorder(args.record) if args.record is not None else None
    dc_audio = _dc_audio(args, call)
    sending: asyncio.Task[int] | None = None
    client: AvatarClient | None = None
    problems: list[str] = []
    fetched: list[dict[str, object]] = []
    print(f"calling {args.uri} via {transport}:{host}:{port} (ice={args.ice})", file=err)
    try:
        async with call:
            print(
                f"answered {call.final_status}: streams {list(call.accepted_ids)}"
                f" rejected {list(call.rejected_ids)}",
                file=err,
            )
            await call.wait_channels_open(args.timeout)
            print(f"channels open after {call.timing.setup_seconds:.3f} s", file=err)
            if args.get:
                fetched = await _bootstrap(args, call, recorder, err, problems)
            if _avatar_wanted(args):
                try:
                    client = AvatarClient(call, recorder=recorder, on_message=_progress(err))
                except UeCallError as exc:
                    problems.append(str(exc))
                else:
                    await _avatar_steps(args, client, err, problems)
            if dc_audio is not None:
                if dc_audio.stream_id in call.accepted_ids:
                    sending = asyncio.get_running_loop().create_task(dc_audio.run())
                else:
                    problems.append(f"--audio-dc: stream {dc_audio.stream_id} was not accepted")
            for sid, data in [*args.send, *args.send_hex]:
                try:
                    call.send(sid, data)
                except UeCallError as exc:
                    call.errors.append(str(exc))
                    print(f"send failed: {exc}", file=err)
            deadline = loop.time() + args.duration
            if sending is not None and dc_audio is not None:
                deadline = max(deadline, loop.time() + dc_audio.seconds + 0.2)
            while call.state == "confirmed" and (left := deadline - loop.time()) > 0:
                received = False
                for sid in call.accepted_ids:
                    while call.pending_messages(sid):
                        print(f"rx {sid}: {_show(await call.receive(sid, 0.1))}", file=err)
                        received = True
                if not received:
                    await asyncio.sleep(min(left, 0.02))
            if client is not None:
                await client.aclose()
    except (UeCallError, TimeoutError, OSError) as exc:
        if not any(str(exc) in error for error in call.errors):  # connect() records its own
            call.errors.append(f"{type(exc).__name__}: {exc}")
        print(f"call failed: {exc}", file=err)
    finally:
        if sending is not None:
            sending.cancel()
        if client is not None:
            await client.aclose()
        if recorder is not None:
            recorder.close()
    summary = call.summary()
    summary["mf"] = f"{transport}:{host}:{port}"
    summary["duration"] = args.duration
    if args.get:
        summary["bootstrap"] = fetched
    if client is not None:
        avatar = client.summary()
        summary["avatar"] = avatar
        problems.extend(client.failures)
    if recorder is not None:
        summary["record"] = str(recorder.directory)
    if rtp_audio is not None:
        summary["audio"] = {
            "codec": rtp_audio.codec,
            "packets_sent": rtp_audio.packets_out,
            "packets_received": rtp_audio.packets_in,
            "seconds_received": round(len(rtp_audio.received_pcm()) / 32000, 3),
        }
        if args.audio_out is not None:
            rtp_audio.save_wav(Path(args.audio_out))
            summary["audio"]["out"] = args.audio_out  # type: ignore[index]
    if dc_audio is not None:
        summary["audio_dc"] = dc_audio.summary()
    if rtp_video is not None and args.render is None:
        summary["video"] = {
            "codec": rtp_video.codec,
            "pictures_sent": rtp_video.pictures_out,
            "packets_sent": rtp_video.packets_out,
            "keyframe_requests": rtp_video.keyframe_requests,
        }
    elif rtp_video is not None:
        summary["video"] = _video_summary(args, rtp_video, rtp_audio, problems)
    if problems:
        summary["errors"] = [*call.errors, *problems]
        summary["ok"] = False
    return summary


def _rtp_video(args: argparse.Namespace) -> UeVideo | None:
    from avatar_mf.ue.rtp_video import UeVideo

    if args.render is None and not args.webrtc_video:
        return None
    # --webrtc-video without --render: test pictures at 25 fps for the call's duration.
    count = 0 if args.render is not None else max(1, round(args.duration * 25))
    return UeVideo(
        args.local_host, codecs=(args.video_codec,), count=count, webrtc=args.webrtc_video
    )


def _video_summary(
    args: argparse.Namespace, video: UeVideo, audio: UeAudio | None, problems: list[str]
) -> dict[str, object]:
    """What the UE received of the MF's video; writes ``--render DIR``/video.mp4."""
    from avatar_mf.ue.av_sync import motion_onset, sound_onset
    from avatar_mf.ue.video_file import save_mp4

    out: dict[str, object] = {
        "codec": video.codec,
        "packets_received": video.packets_in,
        "packets_lost": video.lost_in,
        "frames_received": len(video.units),
        "keyframes_received": video.keyframes_in,
        "pli_sent": video.pli_out,
        "frame_rate": round(video.frame_rate(), 2),
    }
    pictures = video.received_pictures()
    out["frames_decoded"] = len(pictures)
    if not pictures:
        problems.append(
            "--render: no video was received (is the MF's animation stage "
            '"network"? docs/rendering.md)'
        )
        return out
    pcm = audio.received_pcm() if audio is not None else b""
    audio_start = 0.0
    out["av_skew_ms"] = None  # without both SRs, speech and a picture at rest before it
    v_sr = video.sender_reports[-1] if video.sender_reports else None
    a_sr = audio.sender_reports[-1] if audio is not None and audio.sender_reports else None
    frames = audio.timed_frames() if audio is not None else []
    if v_sr is not None and a_sr is not None and frames:
        audio_start = a_sr.wall(frames[0][0]) - v_sr.wall(pictures[0][0])
        onset = sound_onset(frames)
        moved = motion_onset(pictures, RENDER_MOUTH)
        # Only meaningful when the picture was at rest before the speech began.
        if onset is not None and moved is not None:
            heard = a_sr.wall(onset[0]) + onset[1]
            if v_sr.wall(pictures[0][0]) < heard - SKEW_REST:
                out["av_skew_ms"] = round((heard - v_sr.wall(moved)) * 1000, 1)
    path = args.render / "video.mp4"
    try:
        out["frames_written"] = save_mp4(path, pictures, audio=pcm, audio_start=audio_start)
        out["file"] = str(path)
    except (OSError, ValueError) as exc:
        problems.append(f"--render: {exc}")
    return out


def _dc_audio(args: argparse.Namespace, call: UeCall) -> DcAudioSender | None:
    from avatar_mf.ue.dc_audio import DcAudioSender
    from avatar_mf.ue.rtp_audio import read_wav

    if getattr(args, "audio_dc", None) is None:
        return None
    return DcAudioSender(call.send, read_wav(Path(args.audio_dc)))


def _rtp_audio(args: argparse.Namespace) -> UeAudio | None:
    from avatar_mf.ue.rtp_audio import UeAudio, read_wav

    if args.audio_in is None and args.audio_out is None and args.render is None:
        return None
    pcm = read_wav(Path(args.audio_in)) if args.audio_in is not None else b""
    codecs = (
        [c.strip() for c in args.audio_codecs.split(",") if c.strip()]
        if args.audio_codecs is not None
        else None
    )
    return UeAudio(args.local_host, codecs=codecs, pcm=pcm, webrtc=args.webrtc_audio)


def run(args: argparse.Namespace, context: _Streams | None = None) -> int:
    """Run ``ue call`` with parsed ``args``; returns the exit status."""
    streams: _Streams = context if context is not None else _Std()
    try:
        _target(args)
    except ValueError as exc:
        print(f"avatar-mf ue call: {exc}", file=streams.stderr)
        return EXIT_USAGE
    try:
        import uvloop

        summary = uvloop.run(_call(args, streams.stderr))
    except KeyboardInterrupt:
        return EXIT_FAILED
    print(json.dumps(summary, sort_keys=False), file=streams.stdout)
    return EXIT_OK if summary.get("ok") else EXIT_FAILED
