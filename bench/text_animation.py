"""Text-driven animation benchmark: how fast text becomes animation, and how many speaking
sessions one MF process paces in real time.

Usage::

    .venv/bin/python bench/text_animation.py [--sessions 10,25,50,75,100] [--speech 10]
                                             [--late-ms 50] [--workers N] [--json FILE]

Part 1, in this process: the animation-data stage itself
(:class:`~avatar_mf.stages.animation_data.text_animation.TextToAnimation`, espeak-ng phoneme
timing, co-articulation, blinks, head motion, ARF encoding) on ``--texts`` distinct English
texts of 1 to 30 s of speech. Real-time factor = CPU seconds of planning / seconds of animation
planned (first call apart: it loads espeak-ng); the same texts again show the timeline cache.

Part 2, one MF subprocess (``MfProcess``, ``LOG__LEVEL=WARNING``, default settings: 30 units/s,
2 stage threads, 64 pending jobs) on loopback. For each session count K: K rooms, each with a
speaker UE and a listener UE (``avatar_mf.ue.UeCall``, no ICE). Every speaker sends one ``text``
message (a distinct text of about ``--speech`` seconds), the K of them spread over
``--spread`` seconds; the MF plans the animation in its stage executor and paces the units
(a BLENDSHAPE and a JOINT unit per frame, 30 frames/s) to the listener through the room relay.
The listeners record every unit's arrival:

* start latency: text sent -> the stream's CONFIG unit arrives (planning, queueing, relay);
* lateness of each unit: its arrival minus the time its timestamp gives, with the stream's
  earliest unit as the reference (``arrival - timestamp/timescale - min(...)``): 0 when paced
  exactly, growing when the MF (or the listener) falls behind. A unit is on time within
  ``--late-ms``.

MF CPU (utime + stime, /proc/<pid>/stat) from the first text to the last unit, divided by the
seconds of animation delivered, is the CPU share of one core one speaking session costs
(planning included); its inverse is the sessions one core sustains. The UEs run in
``--workers`` processes and cost CPU on the same machine: the listeners' DTLS/SCTP receive
work is about what the MF spends sending.

Prints figures only (no assertions); exits 1 if a call failed or the MF did not go idle.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import random
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    HOST,
    SETUP_LIMIT,
    Fleet,
    cpu_seconds,
    default_workers,
    describe_machine,
    machine_busy,
    markdown_table,
    percentile,
    run_queue_wait,
    start_mf,
    wait_released,
)

_CONCURRENT_SETUPS = 20

#: Sentences the texts are made of (shuffled per session, so each text is new to espeak-ng's
#: timeline cache and every session says something else).
SENTENCES = (
    "Bob met Pam by the map.",
    "Hello, can you hear me?",
    "The weather is lovely today, and I thought we could walk along the river after lunch.",
    "Avatar calls carry animation units thirty times a second.",
    "The face on the other side moves with the words as they are spoken.",
    "Please send me the slides before the meeting starts.",
    "I will be there in about ten minutes, the traffic is awful.",
    "Could you say that again, the line was breaking up?",
    "We measured the latency on a loaded machine and it held up well.",
    "My favourite colour is blue, but green comes a close second.",
    "She sells sea shells by the sea shore.",
    "Five quick brown foxes jumped over the lazy dogs in the park.",
    "Let us meet at the station at half past nine tomorrow morning.",
    "The quarterly numbers look better than we expected.",
    "Thank you very much, that was really helpful.",
    "What time does the last train leave for the city?",
    "Our team shipped the new version on Friday afternoon.",
    "Remember to water the plants while I am away.",
    "The museum opens at ten and closes at six.",
    "I think we should try the new restaurant on the corner.",
)


def make_text(seed: int, seconds: float) -> str:
    """A distinct text of about ``seconds`` of speech (English, ~14 characters a second)."""
    rng = random.Random(seed)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < seconds * 14.5:
        words.append(rng.choice(SENTENCES))
    return " ".join(words)[:1990]


# --------------------------------------------------------------------------- part 1


def stage_figures(texts: int) -> dict[str, Any]:
    from avatar_mf.stages.animation_data.text_animation import TextToAnimation

    source = TextToAnimation()
    samples = [make_text(10_000 + i, 1 + 29 * i / max(1, texts - 1)) for i in range(texts)]
    cold_cpu = time.process_time()
    first = source.plan_text("Warm up.", language="en-US", rate=30.0, start_tick=0)
    cold_cpu = time.process_time() - cold_cpu
    rows = []
    for cached in (False, True):
        for text in samples:
            cpu = time.process_time()
            wall = time.perf_counter()
            plan = source.plan_text(text, language="en-US", rate=30.0, start_tick=0)
            cpu = time.process_time() - cpu
            wall = time.perf_counter() - wall
            rows.append(
                {
                    "cached": cached,
                    "chars": len(text),
                    "seconds": plan.duration,
                    "units": len(plan.units),
                    "cpu": cpu,
                    "wall": wall,
                }
            )
    out: dict[str, Any] = {"first_call_cpu_ms": round(cold_cpu * 1000, 1), "first": first.duration}
    for cached in (False, True):
        part = [r for r in rows if r["cached"] is cached]
        rtf = [r["cpu"] / r["seconds"] for r in part]
        key = "cached" if cached else "uncached"
        out[key] = {
            "texts": len(part),
            "speech_seconds": round(sum(r["seconds"] for r in part), 1),
            "rtf_median": round(statistics.median(rtf), 5),
            "rtf_max": round(max(rtf), 5),
            "cpu_ms_per_speech_second": round(
                1000 * sum(r["cpu"] for r in part) / sum(r["seconds"] for r in part), 2
            ),
            "wall_ms_max": round(1000 * max(r["wall"] for r in part), 1),
            "units_per_speech_second": round(
                sum(r["units"] for r in part) / sum(r["seconds"] for r in part), 1
            ),
        }
    return out


# --------------------------------------------------------------------------- UE worker


class _Session:
    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.speaker: Any = None
        self.listener: Any = None
        self.said_at = 0.0
        self.arrivals = array.array("d")
        self.ticks = array.array("q")
        self.config_at: float | None = None
        self.timescale = 1000.0
        self.errors: list[str] = []


class _Worker:
    def __init__(self) -> None:
        from avatar_mf.media.certificate import CertificateStore

        self.certificate = CertificateStore.generate(validity_days=2)
        self.sessions: list[_Session] = []

    async def setup(self, names: Sequence[tuple[str, int]], port: int) -> list[str]:
        from avatar_mf.ue import UeCall

        gate = asyncio.Semaphore(_CONCURRENT_SETUPS)
        failures: list[str] = []

        async def one(session: _Session, side: str) -> None:
            call = UeCall.dial(
                f"sip:{session.name}@{HOST}:{port}",
                HOST,
                port,
                ice=False,
                from_uri=f"sip:{side}-{session.name}@{HOST}",
                certificate=self.certificate,
                setup_timeout=SETUP_LIMIT,
                answer_timeout=SETUP_LIMIT,
            )
            if side == "speaker":
                session.speaker = call
            else:
                session.listener = call
            async with gate:
                try:
                    await call.connect()
                    await call.wait_channels_open(SETUP_LIMIT)
                except Exception as exc:
                    failures.append(f"{session.name}/{side}: {type(exc).__name__}: {exc}")
                    return
            if side == "speaker":
                call.set_handler(1000, lambda data, at: self._speaker_message(session, data))
            else:
                call.set_handler(1002, lambda data, at: self._unit(session, data, at))
                call.set_handler(1000, lambda data, at: None)

        sessions = [_Session(name, index) for name, index in names]
        self.sessions.extend(sessions)
        await asyncio.gather(*(one(s, side) for s in sessions for side in ("speaker", "listener")))
        return failures

    def _speaker_message(self, session: _Session, data: str | bytes) -> None:
        if isinstance(data, str) and '"urn:3gpp:avatar:v1:error"' in data:
            session.errors.append(json.loads(data).get("code", "?"))

    def _unit(self, session: _Session, data: str | bytes, at: float) -> None:
        if isinstance(data, str) or len(data) < 9:
            return
        kind = data[0] >> 1
        tick = int.from_bytes(data[5:9], "big")
        if kind == 0:
            session.config_at = at
            # CONFIG: uint32 ts, uint8 profile_len, profile, float32 timescale.
            length = data[9]
            session.timescale = struct.unpack(">f", data[10 + length : 14 + length])[0]
            return
        session.arrivals.append(at)
        session.ticks.append(tick)

    async def speak(self, texts: dict[int, str], start_at: float, spread: float) -> None:
        from avatar_mf.protocol import AnimationText, dump_message

        count = max(1, len(self.sessions))
        for session in self.sessions:
            session.arrivals = array.array("d")
            session.ticks = array.array("q")
            session.config_at = None
            session.errors = []

        async def say(session: _Session, k: int) -> None:
            await asyncio.sleep(max(0.0, start_at + spread * k / count - time.monotonic()))
            call = session.speaker
            if call is None or call.state != "confirmed" or call.session is None:
                return
            message = AnimationText(
                id=f"s{session.index}-1", text=texts[session.index], language="en-US"
            )
            session.said_at = time.monotonic()
            call.send(1000, dump_message(message))

        await asyncio.gather(*(say(s, k) for k, s in enumerate(self.sessions)))

    async def speak_and_listen(
        self, texts: dict[int, str], start_at: float, spread: float, listen_until: float
    ) -> tuple[list[dict[str, Any]], float]:
        """Speak, listen until ``listen_until``; what the listeners got and this worker's CPU
        seconds."""
        cpu = time.process_time()
        await self.speak(texts, start_at, spread)
        await asyncio.sleep(max(0.0, listen_until - time.monotonic()))
        return self.results(), time.process_time() - cpu

    def results(self) -> list[dict[str, Any]]:
        out = []
        for s in self.sessions:
            out.append(
                {
                    "name": s.name,
                    "said_at": s.said_at,
                    "config_at": s.config_at,
                    "timescale": s.timescale,
                    "arrivals": s.arrivals.tobytes(),
                    "ticks": s.ticks.tobytes(),
                    "errors": s.errors,
                }
            )
        return out

    async def teardown(self) -> None:
        calls = [c for s in self.sessions for c in (s.speaker, s.listener) if c is not None]
        await asyncio.gather(*(c.hangup() for c in calls), return_exceptions=True)
        self.sessions.clear()


# --------------------------------------------------------------------------- part 2


def run_level(mf: Any, fleet: Fleet, sessions: int, args: argparse.Namespace) -> dict[str, Any]:
    workers = len(fleet.conns)
    names = [(f"tts{sessions}-{i}", i) for i in range(sessions)]
    shares = [names[i::workers] for i in range(workers)]
    failures = [
        f
        for part in fleet.ask([("setup", s, mf.sip_port) if s else None for s in shares])
        for f in part
    ]
    texts = {i: make_text(i * 7919 + sessions, args.speech) for i in range(sessions)}
    start_at = time.monotonic() + 0.5
    listen_until = start_at + args.spread + args.speech * 1.6 + 4.0
    pid = mf.proc.pid
    cpu0 = cpu_seconds(pid)
    messages = [
        ("speak_and_listen", {i: texts[i] for _, i in s}, start_at, args.spread, listen_until)
        if s
        else None
        for s in shares
    ]
    busy = fleet.send(messages)
    # While everyone speaks (after the texts went out, before the first utterance ends).
    active = (start_at + args.spread + 0.5, start_at + args.speech * 0.8)
    time.sleep(max(0.0, active[0] - time.monotonic()))
    a_cpu0, a_busy0, a_wait0 = cpu_seconds(pid), machine_busy(), run_queue_wait(pid)
    time.sleep(max(0.0, active[1] - time.monotonic()))
    a_cpu1, a_busy1, a_wait1 = cpu_seconds(pid), machine_busy(), run_queue_wait(pid)
    span = max(1e-3, active[1] - active[0])
    answers = fleet.receive(busy)
    mf_cpu = cpu_seconds(pid) - cpu0
    fleet.ask([("teardown",) if s else None for s in shares])
    held = wait_released(mf, 30.0)
    if held:
        failures.append(f"MF still holds {held} after the level")

    starts: list[float] = []
    lateness: list[float] = []
    streams: list[tuple[list[float], list[float]]] = []  # (arrivals, lateness) per session
    units = 0
    animation_seconds = 0.0
    errors: list[str] = []
    silent = 0
    ue_cpu = 0.0
    for results, cpu in answers:
        ue_cpu += cpu
        for r in results:
            errors.extend(r["errors"])
            arrivals, ticks = array.array("d"), array.array("q")
            arrivals.frombytes(r["arrivals"])
            ticks.frombytes(r["ticks"])
            if r["config_at"] is None or not arrivals:
                silent += 1
                continue
            starts.append(r["config_at"] - r["said_at"])
            scale = r["timescale"]
            offsets = [a - t / scale for a, t in zip(arrivals, ticks, strict=True)]
            base = min(offsets)
            late_here = [o - base for o in offsets]
            lateness.extend(late_here)
            streams.append((list(arrivals), late_here))
            units += len(arrivals)
            animation_seconds += (max(ticks) - min(ticks)) / scale + 1 / 30
    late = args.late_ms / 1000
    # Once every text has been planned (the last stream started), only pacing and relaying go
    # on: the lateness after that point shows whether planning bursts were the cause.
    planned = max((r_start for r_start in _stream_starts(answers)), default=0.0) + 0.2
    steady = [
        x
        for arrivals_, late_ in streams
        for a, x in zip(arrivals_, late_, strict=True)
        if a > planned
    ]

    def ms(value: float) -> float:
        return round(value * 1000, 1)

    share = mf_cpu / animation_seconds if animation_seconds else None
    row: dict[str, Any] = {
        "sessions": sessions,
        "speaking": sessions - silent,
        "units": units,
        "animation_s": round(animation_seconds, 1),
        "start_p50_ms": ms(statistics.median(starts)) if starts else None,
        "start_max_ms": ms(max(starts)) if starts else None,
        "late_p50_ms": ms(percentile(lateness, 0.5)) if lateness else None,
        "late_p99_ms": ms(percentile(lateness, 0.99)) if lateness else None,
        "late_max_ms": ms(max(lateness)) if lateness else None,
        "late_p99_after_planning_ms": ms(percentile(steady, 0.99)) if steady else None,
        "on_time_pct": (
            round(100 * sum(x <= late for x in lateness) / len(lateness), 2) if lateness else None
        ),
        "mf_cpu_s": round(mf_cpu, 2),
        "mf_cores_while_speaking": round((a_cpu1 - a_cpu0) / span, 3),
        "mf_runq_wait_pct": round(100 * (a_wait1 - a_wait0) / span, 1),
        "machine_busy_pct": round(
            100 * (a_busy1[0] - a_busy0[0]) / max(1.0, a_busy1[1] - a_busy0[1]), 1
        ),
        "mf_cpu_pct_per_session": None if share is None else round(100 * share, 3),
        "sessions_per_core": None if not share else round(1 / share),
        "ue_cpu_s": round(ue_cpu, 2),
        "refusals": dict(sorted({e: errors.count(e) for e in errors}.items())),
        "failures": failures,
    }
    return row


def _stream_starts(answers: Sequence[Any]) -> list[float]:
    """When each listener's stream started (its CONFIG arrived)."""
    return [r["config_at"] for results, _ in answers for r in results if r["config_at"]]


def markdown(rows: Sequence[dict[str, Any]], late_ms: float) -> str:
    header = (
        "speaking sessions", "units received", "start p50 / max", "lateness p50 / p99 / max",
        "p99 once all planned", f"on time (<= {late_ms:g} ms)", "MF CPU per session",
        "MF CPU while speaking", "MF waiting for a CPU", "machine busy", "refused",
    )  # fmt: skip
    lines = [
        (
            f"{r['speaking']}/{r['sessions']}",
            r["units"],
            f"{r['start_p50_ms']} / {r['start_max_ms']} ms",
            f"{r['late_p50_ms']} / {r['late_p99_ms']} / {r['late_max_ms']} ms",
            f"{r['late_p99_after_planning_ms']} ms",
            f"{r['on_time_pct']}%",
            f"{r['mf_cpu_pct_per_session']}% of a core",
            f"{r['mf_cores_while_speaking'] * 100:.0f}%",
            f"{r['mf_runq_wait_pct']:.0f}%",
            f"{r['machine_busy_pct']:.0f}%",
            r["refusals"] or "-",
        )
        for r in rows
    ]
    return markdown_table(header, "rrllrrrrrrl", lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="10,25,50,75,100", help="speaking sessions")
    parser.add_argument("--speech", type=float, default=10.0, help="seconds of speech each")
    parser.add_argument("--spread", type=float, default=2.0, help="texts sent over this long")
    parser.add_argument("--late-ms", type=float, default=50.0, help="on-time tolerance")
    parser.add_argument("--texts", type=int, default=20, help="texts for the stage figures")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(at_most=3),
        help="UE worker processes (default: one per core but one, at most 3)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.sessions.split(",") if n.strip()]

    stage = stage_figures(args.texts)
    print(json.dumps({"stage": stage}), file=sys.stderr, flush=True)

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    load_before = os.getloadavg()
    fleet = Fleet(max(1, args.workers), _Worker)  # first: a failure must not leave an MF
    with tempfile.TemporaryDirectory(prefix="text-animation-") as tmp:
        mf = start_mf(Path(tmp), on_failure=fleet.close)
        try:
            for sessions in levels:
                row = run_level(mf, fleet, sessions, args)
                failures.extend(row.pop("failures"))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        finally:
            fleet.close()
            code = mf.stop()
            if code != 0:
                failures.append(f"MF exited with {code}")
    load_after = os.getloadavg()
    un, ca = stage["uncached"], stage["cached"]
    print(
        f"\n{describe_machine()}, {args.workers} UE worker(s), "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(
        f"\nStage (TextToAnimation, this process): first call {stage['first_call_cpu_ms']} ms CPU; "
        f"{un['texts']} new texts, {un['speech_seconds']} s of speech: real-time factor "
        f"{un['rtf_median']} median, {un['rtf_max']} max ({un['cpu_ms_per_speech_second']} ms CPU "
        f"per second of speech, longest plan {un['wall_ms_max']} ms); the same texts again "
        f"(timeline cache): {ca['rtf_median']}; {un['units_per_speech_second']} units per second."
    )
    print()
    print(markdown(rows, args.late_ms))
    for failure in failures[:20]:
        print(f"FAILURE: {failure}")
    if args.json:
        args.json.write_text(
            json.dumps({"stage": stage, "rows": rows, "failures": failures}, indent=2)
        )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
