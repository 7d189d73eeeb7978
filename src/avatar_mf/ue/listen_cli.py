"""``avatar-mf ue listen``: register with a registrar and answer (or reject) incoming calls.

::

    avatar-mf ue listen --registrar 127.0.0.1:5070 --user ue2 [--transport udp|tcp]
        [--expires S] [--ring S] [--reject STATUS] [--calls N] [--wait S] [--duration S]
        [--hello] [--select AVATAR_ID] [--say TEXT] [--record DIR] [--audio-dc FILE.wav] ...

The UE registers ``sip:<user>@<registrar>`` (RFC 3261 10, refreshed before it expires: see
:mod:`avatar_mf.ue.registration`) with its own socket as Contact, then waits for INVITEs
(:class:`~avatar_mf.ue.listener.UeListener`). Each one rings (180) for ``--ring`` seconds, then
is answered with the UE's usual data channels, or rejected with ``--reject`` (486 Busy Here,
603 Decline...). An answered call runs the same steps as ``ue call`` once its channels are
open: the ``--get`` requests, the avatar steps (hello, ``--upload``, ``--select``, ``--say``,
``--scene-get``), then it stays up ``--duration`` seconds (or until the caller hangs up) taking
what comes, and hangs up.

``--audio-dc FILE.wav`` sends the called side's voice without RTP, as ``ue call --audio-dc``
does (docs/protocol.md section 7): the UE takes an ``avatar-mf-audio`` channel the offer has,
or else adds one (stream 1006, unordered, max-retr=0) with a re-INVITE once the call's channels
are open (RFC 8864 section 6: the MF's own offer has none), asks ``voice`` in its hello and
sends the WAV as 20 ms raw audio messages; the call lasts at least until it is sent.

After ``--calls`` INVITEs (0: until Ctrl-C) the UE removes its binding (Expires: 0) and exits.
Progress goes to stderr; one JSON line per INVITE goes to stdout (the call's summary, as ``ue
call`` prints it, or the rejection). Exit status 0 when every INVITE was handled as asked
(answered calls: every channel opened and nothing failed), 1 otherwise (including a failed
registration), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from avatar_mf.ue.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _avatar_steps,
    _avatar_wanted,
    _bootstrap,
    _dc_audio,
    _non_negative,
    _positive,
    _progress,
    _show,
    _Std,
    _Streams,
    add_avatar_arguments,
)

if TYPE_CHECKING:
    from avatar_mf.ue.call import UeCall
    from avatar_mf.ue.listener import AnswerPolicy

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP = "register with a registrar and answer (or reject) incoming calls as a test UE"
DESCRIPTION = (
    "Register sip:USER@REGISTRAR with the registrar (the lab's Kamailio), refresh the binding "
    "before it expires, and answer incoming INVITEs with the UE's usual data channels (or "
    "reject them with --reject STATUS). Answered calls run the --get and avatar steps, stay up "
    "--duration seconds and hang up. One JSON line per INVITE on stdout; exits after --calls "
    "INVITEs (0: until Ctrl-C)."
)


def _status(text: str) -> int:
    if not text.isdigit() or not 300 <= int(text) <= 699:
        raise argparse.ArgumentTypeError(f"a final non-2xx status (300-699), not {text!r}")
    return int(text)


def _registrar(text: str) -> tuple[str, int]:
    from avatar_mf.sip.errors import SipParseError
    from avatar_mf.sip.headers import split_host_port

    try:
        host, port = split_host_port(text.removeprefix("sip:"))
    except SipParseError as exc:
        raise argparse.ArgumentTypeError(f"{exc.reason}: {text}") from None
    return host.strip("[]"), port or 5060


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ue listen``."""
    parser.add_argument(
        "--registrar",
        type=_registrar,
        required=True,
        metavar="HOST[:PORT]",
        help="the registrar, also the outbound proxy of every request (e.g. 127.0.0.1:5070)",
    )
    parser.add_argument("--user", required=True, help="the user part of the AOR, e.g. ue2")
    parser.add_argument(
        "--domain", help="host part of the AOR and REGISTER Request-URI (default: --registrar)"
    )
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--local-host", default="127.0.0.1", metavar="ADDR")
    parser.add_argument(
        "--local-port", type=int, default=0, metavar="PORT", help="SIP port (default: any)"
    )
    parser.add_argument(
        "--expires",
        type=int,
        default=600,
        metavar="S",
        help="registration lifetime to ask for (default: %(default)s)",
    )
    parser.add_argument(
        "--ring",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help="seconds to ring (180) before the final answer (default: %(default)s)",
    )
    parser.add_argument(
        "--reject",
        type=_status,
        metavar="STATUS",
        help="reject every INVITE with this status (e.g. 486 Busy Here) instead of answering",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=1,
        metavar="N",
        help="exit after N INVITEs (0: until Ctrl-C; default: %(default)s)",
    )
    parser.add_argument(
        "--wait",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help="give up when no INVITE comes within S seconds (default 0: wait forever)",
    )
    parser.add_argument(
        "--duration",
        type=_non_negative,
        default=1.0,
        metavar="S",
        help="seconds to stay in an answered call once its channels are open",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="S",
        help="seconds allowed for registering, the channels to open and each avatar step",
    )
    parser.add_argument(
        "--audio-dc",
        type=Path,
        metavar="FILE.wav",
        help="send this WAV (16-bit PCM, any rate; resampled to 16 kHz) without RTP, as raw "
        "audio messages on an avatar-mf-audio data channel (the offer's, else stream 1006 "
        "added by a re-INVITE; docs/protocol.md section 7), 20 ms each, after a hello "
        "agreeing voice; the call lasts until it is sent",
    )
    add_avatar_arguments(parser)


def answer_policy(args: argparse.Namespace) -> AnswerPolicy:
    """How ``ue listen`` answers: ``--reject``, ``--ring``, and with ``--audio-dc`` it also
    takes an ``avatar-mf-audio`` channel the offer has."""
    from avatar_mf.ue.dc_audio import AUDIO_STREAM
    from avatar_mf.ue.listener import AnswerPolicy
    from avatar_mf.ue.offer import ANSWER_STREAMS

    streams = ANSWER_STREAMS
    if getattr(args, "audio_dc", None) is not None:
        streams = (*ANSWER_STREAMS, AUDIO_STREAM)
    return AnswerPolicy(reject=args.reject, ring_seconds=args.ring, streams=streams)


async def _audio_channel(args: argparse.Namespace, call: UeCall, problems: list[str]) -> int | None:
    """The open ``avatar-mf-audio`` channel of an answered call for ``--audio-dc``: the
    offer's, else stream 1006 added with a re-INVITE (None, with the problem, when the MF
    does not accept it)."""
    from avatar_mf.protocol.names import SUBPROTOCOL_AUDIO
    from avatar_mf.ue.call import CallRejected, UeCallError
    from avatar_mf.ue.dc_audio import AUDIO_STREAM

    offered = call.streams_with(SUBPROTOCOL_AUDIO)
    if offered:
        return offered[0]
    try:
        added = await call.add_streams([AUDIO_STREAM], args.timeout)
    except UeCallError as exc:  # CallRejected too
        warning = ""
        if isinstance(exc, CallRejected):
            warning = " ".join(exc.response.headers.get_list("Warning"))
        problems.append(
            f"--audio-dc: the re-INVITE adding the audio channel failed: {exc} {warning}".rstrip()
        )
        return None
    if not added:
        problems.append(f"--audio-dc: stream {AUDIO_STREAM.stream_id} was not accepted")
        return None
    await call.wait_channels_open(args.timeout)
    return added[0].stream_id


async def _take_call(args: argparse.Namespace, call: UeCall, err: TextIO) -> dict[str, object]:
    from avatar_mf.ue.avatar import AvatarClient
    from avatar_mf.ue.call import UeCallError
    from avatar_mf.ue.dc_audio import DcAudioSender
    from avatar_mf.ue.recorder import Recorder

    loop = asyncio.get_running_loop()
    recorder = Recorder(args.record) if args.record is not None else None
    client: AvatarClient | None = None
    dc_audio: DcAudioSender | None = None
    sending: asyncio.Task[int] | None = None
    problems: list[str] = []
    print(f"answered a call from {call.target_uri}: streams {list(call.accepted_ids)}", file=err)
    try:
        await call.wait_channels_open(args.timeout)
        print(f"channels open after {call.timing.setup_seconds:.3f} s", file=err)
        audio_stream = None
        if getattr(args, "audio_dc", None) is not None:
            audio_stream = await _audio_channel(args, call, problems)
        if args.get:
            await _bootstrap(args, call, recorder, err, problems)
        if _avatar_wanted(args):
            client = AvatarClient(call, recorder=recorder, on_message=_progress(err))
            await _avatar_steps(args, client, err, problems)
        if audio_stream is not None:
            dc_audio = _dc_audio(args, call)
            if dc_audio is not None:
                dc_audio.stream_id = audio_stream
                sending = loop.create_task(dc_audio.run())
        deadline = loop.time() + args.duration
        if dc_audio is not None:
            deadline = max(deadline, loop.time() + dc_audio.seconds + 0.2)
        while call.state == "confirmed" and (left := deadline - loop.time()) > 0:
            received = False
            for sid in call.accepted_ids:
                while call.pending_messages(sid):
                    print(f"rx {sid}: {_show(await call.receive(sid, 0.1))}", file=err)
                    received = True
            if not received:
                await asyncio.sleep(min(left, 0.02))
    except (UeCallError, TimeoutError, OSError) as exc:
        call.errors.append(f"{type(exc).__name__}: {exc}")
        print(f"call failed: {exc}", file=err)
    finally:
        if sending is not None:
            sending.cancel()
        if client is not None:
            await client.aclose()
        await call.hangup()
        if recorder is not None:
            recorder.close()
    summary = call.summary()
    summary["direction"] = "incoming"
    if dc_audio is not None:
        summary["audio_dc"] = dc_audio.summary()
    if client is not None:
        summary["avatar"] = client.summary()
        problems.extend(client.failures)
    if problems:
        summary["errors"] = [*call.errors, *problems]
        summary["ok"] = False
    return summary


async def _listen(args: argparse.Namespace, out: TextIO, err: TextIO) -> bool:
    from avatar_mf.ue.listener import UeListener

    host, port = args.registrar
    listener = await UeListener.open(
        host,
        port,
        user=args.user,
        domain=args.domain,
        transport=args.transport,
        local_host=args.local_host,
        local_port=args.local_port,
        policy=answer_policy(args),
        expires=args.expires,
        setup_timeout=args.timeout,
    )
    all_ok = True
    try:
        try:
            status = await listener.registered(args.timeout)
        except (TimeoutError, ConnectionError) as exc:
            print(f"registration failed: {exc}", file=err)
            return False
        print(
            f"registered {listener.aor} at {host}:{port} for {status.granted} s "
            f"(contact {listener.sip.contact(args.user)})",
            file=err,
        )
        handled = 0
        while args.calls == 0 or handled < args.calls:
            try:
                await listener.wait_for_record(handled + 1, args.wait or 10**9)
            except TimeoutError:
                print(f"no call within {args.wait} s", file=err)
                return False
            record = listener.history[handled]
            handled += 1
            if record.status == 200:
                summary = await _take_call(args, await listener.next_call(args.timeout), err)
                all_ok = all_ok and bool(summary.get("ok"))
            else:
                expected = record.status == args.reject
                summary = {
                    "ok": expected,
                    "direction": "incoming",
                    "call_id": record.call_id,
                    "caller": record.caller,
                    "status": record.status,
                    "cancelled": record.cancelled,
                }
                print(f"INVITE from {record.caller}: {record.status}", file=err)
                all_ok = all_ok and (expected or record.cancelled)
            print(json.dumps(summary), file=out, flush=True)
        return all_ok
    finally:
        await listener.close()


def run(args: argparse.Namespace, context: _Streams | None = None) -> int:
    """Run ``ue listen`` with parsed ``args``; returns the exit status."""
    streams: _Streams = context if context is not None else _Std()
    if args.calls < 0 or args.expires <= 0:
        print("avatar-mf ue listen: --calls >= 0 and --expires > 0", file=streams.stderr)
        return EXIT_USAGE
    try:
        import uvloop

        ok = uvloop.run(_listen(args, streams.stdout, streams.stderr))
    except KeyboardInterrupt:
        return EXIT_FAILED
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover - python -m avatar_mf.ue.listen_cli
    parser = argparse.ArgumentParser(prog="avatar-mf ue listen", description=DESCRIPTION)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
