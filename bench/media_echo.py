"""Media-stack CPU per data channel message: two sessions in one process, one echoing.

Usage::

    .venv/bin/python bench/media_echo.py [--messages 4000] [--burst 4] [--gap 0.0005]
                                         [--rounds 3] [--dtls fast|openssl]
                                         [--profile FILE]

A UE-side and an MF-side :class:`~avatar_mf.media.session.DataChannelSession` (no ICE, DTLS over
loopback UDP, the default SCTP tuning) in one uvloop process; the UE sends ``--messages``
134-byte messages on one channel, ``--burst`` at a time with ``--gap`` seconds between bursts,
and the MF side sends each back as it arrives. Printed: the process CPU (utime + stime) per
echoed message, which covers both ends' send and receive paths (DTLS, SCTP, channel) and the
event loop, and nothing above the media layer (no SIP, no session pipeline, no relay). To
compare two builds, run it once per build with that build's ``src`` first on ``PYTHONPATH``
(the ``--dtls`` switch exists only in builds that have ``media.dtls_fast_records``).
``--profile FILE`` runs the rounds under cProfile with its CPU-time clock
(``time.process_time``, so time spent waiting in ``select`` does not count) and writes the
stats to FILE (``python -m pstats FILE``); the figures printed then include the profiler.

Prints figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


async def one_round(messages: int, burst: int, gap: float, dtls: str | None) -> float:
    from avatar_mf.media import (
        CertificateStore,
        ChannelOpened,
        DataChannelEndpointFactory,
        MessageReceived,
        SessionEvent,
        StreamSpec,
    )
    from avatar_mf.media.ue_side import UeDataChannels, connect_to_mf

    options: dict[str, Any] = {} if dtls is None else {"dtls_fast_records": dtls == "fast"}
    factory = DataChannelEndpointFactory(
        CertificateStore.generate(validity_days=2), media_host="127.0.0.1", **options
    )
    ue = UeDataChannels("127.0.0.1", ice=False, **options)
    loop = asyncio.get_running_loop()
    opened: set[str] = set()
    both_open = loop.create_future()
    all_back = loop.create_future()
    received = 0
    mf_session: list[Any] = []

    def opened_on(side: str, event: SessionEvent) -> None:
        if isinstance(event, ChannelOpened):
            opened.add(side)
            if len(opened) == 2 and not both_open.done():
                both_open.set_result(None)

    def on_mf(event: SessionEvent) -> None:
        opened_on("mf", event)
        if isinstance(event, MessageReceived):
            mf_session[0].send(event.stream_id, event.data)

    def on_ue(event: SessionEvent) -> None:
        nonlocal received
        opened_on("ue", event)
        if isinstance(event, MessageReceived):
            received += 1
            if received == messages and not all_back.done():
                all_back.set_result(None)

    streams = [StreamSpec(1002, subprotocol="3gpp-ar-animation")]
    mf, ue_session = await connect_to_mf(factory, ue, streams, mf_events=on_mf, ue_events=on_ue)
    mf_session.append(mf)
    try:
        await asyncio.wait_for(both_open, 10)
        message = bytes(134)
        cpu = time.process_time()
        for i in range(messages):
            ue_session.send(1002, message)
            if i % burst == burst - 1:
                await asyncio.sleep(gap)
        await asyncio.wait_for(all_back, 60)
        return (time.process_time() - cpu) / messages
    finally:
        await mf.close()
        await ue_session.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--burst", type=int, default=4, help="messages sent per loop turn")
    parser.add_argument("--gap", type=float, default=0.0005, help="seconds between bursts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dtls", choices=("fast", "openssl"), help="DTLS records (default: the build's default)"
    )
    parser.add_argument(
        "--profile", type=Path, help="run under cProfile (CPU-time clock), stats written here"
    )
    args = parser.parse_args(argv)
    import uvloop

    profiler = None
    if args.profile is not None:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    figures = [
        uvloop.run(one_round(args.messages, args.burst, args.gap, args.dtls))
        for _ in range(args.rounds)
    ]
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    print(
        f"{args.messages} messages, {args.burst} per burst, {args.gap * 1000:g} ms apart, "
        f"DTLS {args.dtls or 'default'}: "
        + ", ".join(f"{f * 1e6:.1f}" for f in figures)
        + f" us CPU per echoed message (median {statistics.median(figures) * 1e6:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
