"""``avatar-mf ue call <sip-uri>``: place one test call and report it as JSON.

::

    avatar-mf ue call sip:avatar@127.0.0.1:5060 [--transport udp|tcp] [--no-ice]
        [--duration S] [--send STREAM:TEXT ...] [--send-hex STREAM:HEX ...]

The call offers the default streams (bootstrap 0 and 10, 1000 ``3gpp-ar-metadata``, 1002
``3gpp-ar-animation``; ``--stream`` replaces them), waits until every accepted channel is open,
sends the ``--send`` messages, stays up ``--duration`` seconds counting what comes back, then
hangs up. Progress goes to stderr; the last stdout line is a JSON summary (setup time, channels
opened, messages and bytes per channel, errors). Exit status 0 when the call was answered, every
accepted channel opened and nothing failed; 1 otherwise; 2 for bad arguments.

The MF is reached at the URI's host and port (``--proxy`` overrides), over the URI's
``transport`` parameter unless ``--transport`` is given.

For the main CLI: :func:`add_arguments` and :func:`run` fit ``avatar_mf.cli.Command``
(``run(args, context)``, where context has ``stdout`` and ``stderr``); :func:`add_parser` adds
the ``call`` subcommand to an argparse subparsers object directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from avatar_mf.sdp.datachannel import DcMap

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "add_parser", "run"]

HELP = "place a test call with data channels and report it as JSON"
DESCRIPTION = (
    "Call the MF as a UE offering WebRTC data channels (ICE, or plain DTLS over UDP with "
    "--no-ice), wait until every accepted channel is open, send the --send messages, stay up "
    "--duration seconds, hang up, and print a JSON summary as the last stdout line. Exits 0 "
    "when the call was answered and every accepted channel opened."
)

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
        help="seconds allowed for the answer and for the channels to open (default: %(default)s)",
    )


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
    return host.strip("[]"), port or 5060, transport


def _streams(args: argparse.Namespace) -> tuple[DcMap, ...]:
    from avatar_mf.sdp.datachannel import DcMap
    from avatar_mf.ue.offer import DEFAULT_STREAMS

    if not args.stream:
        return DEFAULT_STREAMS
    return tuple(
        DcMap(sid, label=label, subprotocol=subprotocol or None)
        for sid, subprotocol, label in args.stream
    )


def _show(data: str | bytes) -> str:
    if isinstance(data, str):
        return repr(data[:80]) + ("..." if len(data) > 80 else "")
    return f"<{len(data)} bytes {data[:16].hex()}{'...' if len(data) > 16 else ''}>"


async def _call(args: argparse.Namespace, err: TextIO) -> dict[str, object]:
    from avatar_mf.ue.call import UeCall, UeCallError

    host, port, transport = _target(args)
    loop = asyncio.get_running_loop()
    call = UeCall.dial(
        args.uri,
        host,
        port,
        transport="tcp" if transport == "tcp" else "udp",
        ice=args.ice,
        streams=_streams(args),
        audio=args.audio,
        local_host=args.local_host,
        fingerprint_algorithm=args.fingerprint_hash,
        answer_timeout=args.timeout,
        setup_timeout=args.timeout,
    )
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
            for sid, data in [*args.send, *args.send_hex]:
                try:
                    call.send(sid, data)
                except UeCallError as exc:
                    call.errors.append(str(exc))
                    print(f"send failed: {exc}", file=err)
            deadline = loop.time() + args.duration
            while call.state == "confirmed" and (left := deadline - loop.time()) > 0:
                received = False
                for sid in call.accepted_ids:
                    while call.pending_messages(sid):
                        print(f"rx {sid}: {_show(await call.receive(sid, 0.1))}", file=err)
                        received = True
                if not received:
                    await asyncio.sleep(min(left, 0.02))
    except (UeCallError, TimeoutError, OSError) as exc:
        if not any(str(exc) in error for error in call.errors):  # connect() records its own
            call.errors.append(f"{type(exc).__name__}: {exc}")
        print(f"call failed: {exc}", file=err)
    summary = call.summary()
    summary["mf"] = f"{transport}:{host}:{port}"
    summary["duration"] = args.duration
    return summary


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
