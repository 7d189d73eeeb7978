"""In-process CPU of one SIPp call's SIP input and SDP answer work, without sockets or a loop.

Usage::

    .venv/bin/python bench/sip_call_path.py [--calls 20000] [--baseline-src OTHER/src]

What ``bench/sipp_rate.py`` runs, taken apart: per call, the three datagrams of
``tests/sipp/basic_call.xml`` (INVITE with the IMS offer, ACK, BYE; a fresh branch, Call-ID and
tag per call, ``;rport`` in the Via as SIPp sends it) go through what the MF does with each
before the user agent: ``parse_message``, ``stamp_received`` (RFC 3581), the top Via read by
transaction matching, ``validate_request`` (not for the ACK) and the Via read again by routing;
then the INVITE's offer is answered: ``parse_sdp``, ``plan_answer`` with the node's policy
(AMR-WB through the codec registry, the bootstrap streams 0 and 10) and ``render_answer`` +
``serialize_sdp``. Each figure is the best of 3 rounds of process CPU time (``time.process_time``)
divided by the calls, in microseconds.

``--baseline-src DIR`` runs the same script with another checkout's ``src`` first (e.g. a
worktree of main), rows ``baseline`` and ``this``. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFER = (ROOT / "tests/fixtures/sdp/ims-avatar-offer-no-ice.sdp").read_bytes()


def datagrams(i: int) -> list[bytes]:
    """The INVITE, ACK and BYE of call ``i`` as SIPp sends them (basic_call.xml)."""
    via = f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-{{n}};rport\r\n"
    common = (
        f"From: <sip:ue1@127.0.0.1:5061>;tag=77-{i}\r\nCall-ID: {i}-77@127.0.0.1\r\n"
        "Contact: <sip:ue1@127.0.0.1:5061;transport=UDP>\r\nMax-Forwards: 70\r\n"
    )
    to_tag = f"To: <sip:avatar@127.0.0.1:5060>;tag=mf{i}\r\n"
    invite = (
        "INVITE sip:avatar@127.0.0.1:5060 SIP/2.0\r\n"
        + via.format(n=1)
        + common
        + "To: <sip:avatar@127.0.0.1:5060>\r\nCSeq: 1 INVITE\r\n"
        + f"Content-Type: application/sdp\r\nContent-Length: {len(OFFER)}\r\n\r\n"
    ).encode() + OFFER
    ack = (
        "ACK sip:mf@127.0.0.1:5060;transport=udp SIP/2.0\r\n"
        + via.format(n=2)
        + common
        + to_tag
        + "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    bye = (
        "BYE sip:mf@127.0.0.1:5060;transport=udp SIP/2.0\r\n"
        + via.format(n=3)
        + common
        + to_tag
        + "CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    return [invite, ack, bye]


def best_of_3(calls: int, run: Callable[[int, int], float]) -> float:
    """Microseconds of CPU per call: ``run(first, count)`` over fresh calls returns the CPU
    seconds it spent; the best of 3 rounds."""
    return min(run(round_ * calls, calls) for round_ in range(3)) / calls * 1e6


def measure(calls: int) -> dict[str, float]:
    from avatar_mf.calls.audio import RegistryAudioCaps
    from avatar_mf.sdp import Fingerprint, parse_sdp, serialize_sdp
    from avatar_mf.sdp.offer_answer import (
        AnswerPolicy,
        DataChannelAnswerParams,
        StreamPolicy,
        plan_answer,
        render_answer,
    )
    from avatar_mf.sip.headers import parse_via
    from avatar_mf.sip.message import Request, split_header_list
    from avatar_mf.sip.parser import parse_message
    from avatar_mf.sip.peer import Peer
    from avatar_mf.sip.routing import stamp_received
    from avatar_mf.sip.validate import validate_request

    peer = Peer("udp", "127.0.0.1", 5061)
    supported = frozenset({"timer"})

    def top_via(message: Request) -> None:
        first = message.headers.get("Via") or ""
        parse_via(split_header_list(first)[0] if "," in first else first)

    def sip_in(first: int, count: int) -> float:
        # The datagrams are built outside the timed part.
        batch = [datagrams(i) for i in range(first, first + count)]
        start = time.process_time()
        for call in batch:
            for data in call:
                message = parse_message(data)
                assert isinstance(message, Request)
                message = stamp_received(message, peer)
                top_via(message)
                if message.method != "ACK":
                    validate_request(message, supported=supported)
                top_via(message)
        return time.process_time() - start

    policy = AnswerPolicy(
        streams=StreamPolicy(bootstrap_ids=frozenset({0, 10}), min_application_id=1000),
        audio=RegistryAudioCaps(),
    )
    params = DataChannelAnswerParams(
        port=40000, fingerprints=(Fingerprint.of_certificate(b"bench", "sha-256"),)
    )

    def answer(first: int, count: int) -> float:
        start = time.process_time()
        for i in range(first, first + count):
            plan = plan_answer(parse_sdp(OFFER), policy)
            serialize_sdp(
                render_answer(
                    plan,
                    params,
                    local_address="127.0.0.1",
                    session_id=i,
                    session_version=1,
                    audio_ports={0: 30000},
                )
            )
        return time.process_time() - start

    sip = best_of_3(calls, sip_in)
    sdp = best_of_3(calls, answer)
    return {"SIP in (3 datagrams)": sip, "SDP answer": sdp, "total": sip + sdp}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--baseline-src", type=Path)
    parser.add_argument("--row", default="this", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_src is not None:
        env = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
        subprocess.run(
            [sys.executable, __file__, "--calls", str(args.calls), "--row", "baseline"],
            env=env,
            check=True,
        )
    figures = measure(args.calls)
    print(
        f"{args.row}: "
        + ", ".join(f"{name} {us:.1f} us" for name, us in figures.items())
        + f" per call (best of 3 x {args.calls} calls)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
