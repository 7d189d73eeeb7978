"""Relay latency benchmark: animation units through one MF process, many two-UE rooms at once.

Usage::

    .venv/bin/python bench/relay_latency.py [--rooms 10,50,100] [--seconds 10] [--warmup 2]
                                            [--rate 30] [--senders 2] [--workers 2]
                                            [--ice] [--json FILE] [--sctp aiortc,tuned,...]
                                            [--baseline-src OTHER/src]

One MF subprocess (``MfProcess``, ``LOG__LEVEL=WARNING``, default settings otherwise) on
loopback. For each room count N, N rooms of two test UEs (``avatar_mf.ue.UeCall``, no ICE,
the default streams) are set up; then every UE (``--senders 2``; 1: only the first UE of each
room) sends BLENDSHAPE units on its ``3gpp-ar-animation`` channel at ``--rate`` per second
(20 entries, 134 bytes: the size of the MF's own text-animation units), the senders' phases
spread over one frame interval. The MF relays each unit to the other UE of the room
(rooms/rooms.py, rooms/relay.py).

Each unit carries its send time: the stream's CONFIG declares 1,000,000 ticks per second and
every unit's ``timestamp`` is ``CLOCK_MONOTONIC`` in microseconds (mod 2**32). Every process
runs on this machine, so the receiver's clock is the sender's: one-way latency = receive time -
timestamp, with microsecond resolution. It is measured from the sender handing the unit to its
data channel to the receiver's data channel delivering it: the MF's relay (DTLS decrypt, SCTP,
relay queue, SCTP, DTLS encrypt) plus the sending and receiving UEs' own DTLS/SCTP work, so it
bounds the latency the MF adds from above. The MF's own queue time (unit offered to the
receiver's relay queue -> handed to its channel) comes from its ``/metrics`` histogram
``avatar_mf_relay_latency_seconds{kind="animation"}`` when the node exposes it.

Only units sent inside the measurement window (``--seconds`` after ``--warmup``) count; units
sent in the window and never received are reported as lost. MF CPU is utime + stime of the MF
process over the window (/proc/<pid>/stat), per relayed unit and as a share of one core; the
UEs' CPU (all workers) likewise. The UEs run in ``--workers`` processes (one uvloop each; both
UEs of a room in the same worker), so that they do not share the MF's event loop.

``--sctp`` compares SCTP behaviours in the same run (media/sctp_transport.py ``SctpTuning``):
one MF per variant, side by side, each level run against each in turn; the UEs use the same
variant. ``aiortc``: a SACK per packet with DATA and a packet per message, through aiortc's
queues and chunk objects (aiortc's own, ``media.sctp_sack_every = 1``,
``media.sctp_bundle = false``, ``media.sctp_fast_paths = false``); ``tuned``: the defaults
(delayed SACKs every second packet or 200 ms, bundling, the SCTP send and SACK fast paths);
``slowpath``: the defaults without the send and SACK fast paths; ``openssl``: the defaults but
every DTLS record through OpenSSL (``media.dtls_fast_records = false``); ``baseline``: the
build whose ``src`` ``--baseline-src`` names (e.g. ``git archive main src``), defaults. The
UEs of every variant run this build with the fast DTLS record path (``tuned``'s SCTP unless
the variant is ``aiortc``).

With ``--profile`` (CPU clock), the MF's datagrams received and sent per relayed unit over
the run are printed from the profile's call counts (each sent one is one ``sendto``).

Prints figures only (no assertions); exits 1 if a call failed or the MF did not go idle.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import re
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
    baseline_python,
    cpu_profiling_python,
    cpu_seconds,
    default_workers,
    describe_machine,
    machine_busy,
    markdown_table,
    mf_python,
    percentile,
    run_queue_wait,
    start_mf,
    wait_released,
)

#: MF settings and UE tuning of each ``--sctp`` variant.
SCTP_VARIANTS: dict[str, dict[str, str]] = {
    "aiortc": {
        "MEDIA__SCTP_SACK_EVERY": "1",
        "MEDIA__SCTP_BUNDLE": "false",
        "MEDIA__SCTP_FAST_PATHS": "false",
    },
    "tuned": {},
    "slowpath": {"MEDIA__SCTP_FAST_PATHS": "false"},
    "openssl": {"MEDIA__DTLS_FAST_RECORDS": "false"},
    "baseline": {},
}

TICKS = 1_000_000.0
_MASK = 0xFFFFFFFF
_CONCURRENT_SETUPS = 20


def system_seconds(pid: int) -> float:
    """stime of process ``pid`` (/proc/<pid>/stat field 15): its CPU in the kernel."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def _now_ticks() -> int:
    return (time.monotonic_ns() // 1000) & _MASK


# --------------------------------------------------------------------------- UE worker


class _Room:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[Any] = []


class _Worker:
    """The UEs of some rooms, in one process (one uvloop)."""

    def __init__(self) -> None:
        from avatar_mf.arf import ARKIT_INDEX, BlendshapeUnit, ConfigUnit, encode_unit
        from avatar_mf.media.certificate import CertificateStore
        from avatar_mf.stages.animation_data.visemes import MOUTH_BLENDSHAPES

        # The entries of the MF's own text-animation units: 18 mouth shapes and 2 blinks.
        names = (*MOUTH_BLENDSHAPES, "eyeBlinkLeft", "eyeBlinkRight")
        indices = tuple(sorted(ARKIT_INDEX[n] for n in names))
        self.certificate = CertificateStore.generate(validity_days=2)
        self.rooms: list[_Room] = []
        self._next_receiver = 0
        self.config = encode_unit(ConfigUnit(0, "arf-face-v1", TICKS))
        weights = tuple(0.25 + 0.03 * k for k in range(len(indices)))
        self.template = bytearray(encode_unit(BlendshapeUnit(0, 0, indices, weights)))
        self.window = (0.0, 0.0)
        self.latencies = array.array("d")
        self.sent_times = array.array("d")
        self.receivers = array.array("l")
        self.received = 0
        self.sent = 0
        self.received_all = 0

    # -- setup / teardown -------------------------------------------------------------

    async def setup(
        self, names: Sequence[str], port: int, ice: bool, sctp: str = "tuned"
    ) -> list[str]:
        from avatar_mf.media.sctp_transport import AIORTC_TUNING, DEFAULT_TUNING
        from avatar_mf.ue import UeCall

        tuning = AIORTC_TUNING if sctp == "aiortc" else DEFAULT_TUNING

        gate = asyncio.Semaphore(_CONCURRENT_SETUPS)
        failures: list[str] = []

        async def one(room: _Room, side: str) -> None:
            call = UeCall.dial(
                f"sip:{room.name}@{HOST}:{port}",
                HOST,
                port,
                ice=ice,
                from_uri=f"sip:{side}-{room.name}@{HOST}",
                certificate=self.certificate,
                sctp_tuning=tuning,
                setup_timeout=SETUP_LIMIT,
                answer_timeout=SETUP_LIMIT,
            )
            room.calls.append(call)
            async with gate:
                try:
                    await call.connect()
                    await call.wait_channels_open(SETUP_LIMIT)
                except Exception as exc:  # a failed call is a data point
                    failures.append(f"{room.name}/{side}: {type(exc).__name__}: {exc}")
                    return
            receiver = self._next_receiver
            self._next_receiver += 1
            call.set_handler(1002, lambda data, at: self._on_unit(data, at, receiver))
            call.set_handler(1000, lambda data, at: None)  # announcements: not measured

        rooms = [_Room(name) for name in names]
        self.rooms.extend(rooms)
        await asyncio.gather(*(one(room, side) for room in rooms for side in ("a", "b")))
        return failures

    async def teardown(self) -> None:
        calls = [call for room in self.rooms for call in room.calls]
        await asyncio.gather(*(call.hangup() for call in calls), return_exceptions=True)
        self.rooms.clear()

    # -- measuring --------------------------------------------------------------------

    def _on_unit(self, data: str | bytes, at: float, receiver: int = 0) -> None:
        if isinstance(data, str) or len(data) < 9 or data[0] >> 1 != 1:
            return  # the CONFIG, or not a unit
        now = _now_ticks()
        latency = ((now - int.from_bytes(data[5:9], "big")) & _MASK) / TICKS
        self.received_all += 1
        sent_at = at - latency
        if self.window[0] <= sent_at < self.window[1]:
            self.latencies.append(latency)
            self.sent_times.append(sent_at)
            self.receivers.append(receiver)
            self.received += 1

    async def _send_loop(self, call: Any, first: float, stop: float, interval: float) -> None:
        try:
            call.send(1002, self.config)
        except Exception:
            return
        unit = bytearray(self.template)
        start, end = self.window
        i = 0
        while (due := first + i * interval) < stop:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            unit[5:9] = _now_ticks().to_bytes(4, "big")
            now = time.monotonic()
            try:
                call.send(1002, bytes(unit))
            except Exception:
                return
            if start <= now < end:
                self.sent += 1
            i += 1

    async def run(
        self, start_at: float, warmup: float, seconds: float, rate: float, senders: int
    ) -> dict[str, Any]:
        self.window = (start_at + warmup, start_at + warmup + seconds)
        self.latencies = array.array("d")
        self.sent_times = array.array("d")
        self.receivers = array.array("l")
        self.sent = self.received = self.received_all = 0
        interval = 1.0 / rate
        stop = self.window[1]
        callers = [
            call
            for room in self.rooms
            for call in room.calls[:senders]
            if call.state == "confirmed" and call.session is not None
        ]
        tasks = []
        for k, call in enumerate(callers):
            phase = (k / max(1, len(callers))) * interval
            tasks.append(
                asyncio.ensure_future(self._send_loop(call, start_at + phase, stop, interval))
            )
        await asyncio.sleep(max(0.0, self.window[0] - time.monotonic()))
        cpu0 = time.process_time()
        lags: list[float] = []
        while (left := self.window[1] - time.monotonic()) > 0:
            asked = min(0.01, left)
            before = time.monotonic()
            await asyncio.sleep(asked)
            lags.append(time.monotonic() - before - asked)
        cpu = time.process_time() - cpu0
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.5)  # stragglers
        return {
            "latencies": self.latencies.tobytes(),
            "sent_times": self.sent_times.tobytes(),
            "receivers": self.receivers.tobytes(),
            "sent": self.sent,
            "received": self.received,
            "cpu": cpu,
            "senders": len(callers),
            "loop_lag_p99": percentile(lags, 0.99) if lags else 0.0,
            "loop_lag_max": max(lags, default=0.0),
        }


# --------------------------------------------------------------------------- MF figures


_BUCKET = re.compile(
    r'^avatar_mf_relay_latency_seconds_bucket\{(?=[^}]*kind="animation")[^}]*le="([^"]+)"[^}]*\}'
    r"\s+(\S+)"
)


def relay_histogram(mf: Any) -> dict[float, float] | None:
    """The MF's cumulative animation relay-latency buckets (le -> count), if exposed."""
    try:
        status, body = mf.http_get("/metrics")
    except OSError:
        return None
    if status != 200:
        return None
    buckets: dict[float, float] = {}
    for line in body.decode().splitlines():
        match = _BUCKET.match(line)
        if match:
            buckets[float(match.group(1))] = float(match.group(2))
    return buckets or None


def stale_dropped(mf: Any) -> float | None:
    try:
        status, body = mf.http_get("/metrics")
    except OSError:
        return None
    for line in body.decode().splitlines() if status == 200 else ():
        if line.startswith("avatar_mf_relay_stale_dropped_total"):
            return float(line.split()[-1])
    return None


def histogram_quantile(
    before: dict[float, float] | None, after: dict[float, float] | None, q: float
) -> float | None:
    """Upper bucket bound holding quantile ``q`` of the observations between two scrapes."""
    if not before or not after:
        return None
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return bound
    return bounds[-1]


# --------------------------------------------------------------------------- scenario


def run_level(
    mf: Any, fleet: Fleet, rooms: int, args: argparse.Namespace, sctp: str = "tuned"
) -> dict[str, Any]:
    workers = len(fleet.conns)
    names = [f"lat{rooms}-{sctp}-{i}" for i in range(rooms)]
    shares = [names[i::workers] for i in range(workers)]
    t0 = time.monotonic()
    failures = [
        f
        for part in fleet.ask(
            [("setup", s, mf.sip_port, args.ice, sctp) if s else None for s in shares]
        )
        for f in part
    ]
    setup_seconds = time.monotonic() - t0
    start_at = time.monotonic() + 0.5
    window = (start_at + args.warmup, start_at + args.warmup + args.seconds)
    messages = [
        ("run", start_at, args.warmup, args.seconds, args.rate, args.senders) if s else None
        for s in shares
    ]
    busy = fleet.send(messages)
    time.sleep(max(0.0, window[0] - time.monotonic()))
    cpu0, hist0, drop0 = cpu_seconds(mf.proc.pid), relay_histogram(mf), stale_dropped(mf)
    sys0 = system_seconds(mf.proc.pid)
    busy0, wait0 = machine_busy(), run_queue_wait(mf.proc.pid)
    # The MF's event loop also serves /healthz: its answer time shows how late the loop runs.
    admin_times: list[float] = []
    while window[1] - time.monotonic() > 0.3:
        asked = time.monotonic()
        mf.http_get("/healthz")
        admin_times.append(time.monotonic() - asked)
        time.sleep(0.1)
    time.sleep(max(0.0, window[1] - time.monotonic()))
    cpu1, hist1, drop1 = cpu_seconds(mf.proc.pid), relay_histogram(mf), stale_dropped(mf)
    sys1 = system_seconds(mf.proc.pid)
    busy1, wait1 = machine_busy(), run_queue_wait(mf.proc.pid)
    results = fleet.receive(busy)
    fleet.ask([("teardown",) if s else None for s in shares])
    held = wait_released(mf, 30.0)
    if held:
        failures.append(f"MF still holds {held} after the level")

    latencies: list[float] = []
    trace: list[tuple[float, float, int]] = []
    for r in results:
        values, times, who = array.array("d"), array.array("d"), array.array("l")
        values.frombytes(r["latencies"])
        times.frombytes(r["sent_times"])
        who.frombytes(r["receivers"])
        latencies.extend(values)
        trace.extend(zip(times, values, who, strict=True))
    if args.trace is not None:
        with open(f"{args.trace}-{rooms}.csv", "w") as out:
            out.write("sent_at,latency_s,receiver\n")
            for sent_at, latency, who_ in sorted(trace):
                out.write(f"{sent_at - window[0]:.6f},{latency:.6f},{who_}\n")
    sent = sum(r["sent"] for r in results)
    received = sum(r["received"] for r in results)
    senders = sum(r["senders"] for r in results)
    ue_cpu = sum(r["cpu"] for r in results)
    mf_cpu = cpu1 - cpu0

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    row: dict[str, Any] = {
        "sctp": sctp,
        "rooms": rooms,
        "ues": 2 * rooms,
        "senders": senders,
        "units_per_s": round(received / args.seconds, 1),
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "failed_calls": len([f for f in failures if "/" in f]),
        "setup_s": round(setup_seconds, 1),
        "mf_cpu_core": round(mf_cpu / args.seconds, 3),
        "mf_cpu_us_per_unit": round(mf_cpu / received * 1e6, 1) if received else None,
        "mf_system_share_pct": round(100 * (sys1 - sys0) / mf_cpu, 1) if mf_cpu else None,
        "ue_cpu_cores": round(ue_cpu / args.seconds, 3),
        "mf_runq_wait_pct": round(100 * (wait1 - wait0) / args.seconds, 1),
        "machine_busy_pct": round(100 * (busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]), 1),
        "mf_stale_dropped": None if drop0 is None or drop1 is None else drop1 - drop0,
        "mf_queue_p50_le_ms": ms(histogram_quantile(hist0, hist1, 0.5)),
        "mf_healthz_max_ms": ms(max(admin_times, default=0.0)),
        "ue_loop_lag_max_ms": ms(max((r["loop_lag_max"] for r in results), default=0.0)),
        "ue_loop_lag_p99_ms": ms(max((r["loop_lag_p99"] for r in results), default=0.0)),
        "mf_queue_p99_le_ms": ms(histogram_quantile(hist0, hist1, 0.99)),
    }
    if latencies:
        row.update(
            {
                "p50_ms": ms(percentile(latencies, 0.5)),
                "p90_ms": ms(percentile(latencies, 0.9)),
                "p99_ms": ms(percentile(latencies, 0.99)),
                "p999_ms": ms(percentile(latencies, 0.999)),
                "max_ms": ms(max(latencies)),
            }
        )
    row["failures"] = failures
    return row


def datagrams_per_unit(profile: Path) -> str:
    """The MF's datagrams per relayed unit over its whole run, from a cProfile's call counts:
    received (``PlainUdpTransport._datagram_received``), sent (its ``_send`` and ``send_now``:
    one ``sendto`` each) and SACK-only packets (``_send_sack``, ``_send_sack_now``), against
    the units the relay was offered (``rooms/relay.py`` ``offer``). No-ICE runs only."""
    import pstats

    counts: dict[str, int] = {}
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]  # not in typeshed
    for (filename, _, name), (_, calls, *_) in stats.items():
        where = Path(filename).name
        if (where, name) in (
            ("udp_dtls_transport.py", "_datagram_received"),
            ("udp_dtls_transport.py", "_send"),
            ("udp_dtls_transport.py", "send_now"),
            ("sctp_transport.py", "_send_sack"),
            ("sctp_transport.py", "_send_sack_now"),
            ("relay.py", "offer"),
        ):
            counts[name] = counts.get(name, 0) + calls
    units = counts.get("offer", 0)
    if not units:
        return f"{profile.name}: no relayed unit in the profile"
    received = counts.get("_datagram_received", 0)
    sent = counts.get("_send", 0) + counts.get("send_now", 0)
    sacks = counts.get("_send_sack", 0) + counts.get("_send_sack_now", 0)
    return (
        f"{profile.name}: {units} units relayed; per unit, datagrams received "
        f"{received / units:.2f}, sent {sent / units:.2f} (of which SACK alone "
        f"{sacks / units:.2f})"
    )


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        "SCTP", "rooms", "senders", "units/s relayed", "lost", "p50", "p90", "p99", "p99.9", "max",
        "MF queue p99 (bucket)", "MF CPU (1 core)", "MF CPU/unit", "UE CPU (cores)",
        "MF waiting for a CPU", "machine busy",
    )  # fmt: skip
    lines = []
    for r in rows:
        queue = r["mf_queue_p99_le_ms"]
        lines.append(
            (
                r.get("sctp", "tuned"),
                r["rooms"],
                r["senders"],
                r["units_per_s"],
                r["lost"],
                f"{r.get('p50_ms')} ms",
                f"{r.get('p90_ms')} ms",
                f"{r.get('p99_ms')} ms",
                f"{r.get('p999_ms')} ms",
                f"{r.get('max_ms')} ms",
                "-" if queue is None else f"<= {queue} ms",
                f"{r['mf_cpu_core'] * 100:.0f}%",
                f"{r['mf_cpu_us_per_unit']} us",
                f"{r['ue_cpu_cores']:.2f}",
                f"{r['mf_runq_wait_pct']:.0f}%",
                f"{r['machine_busy_pct']:.0f}%",
            )  # fmt: skip
        )
    return markdown_table(header, "r" * len(header), lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", default="10,50,100", help="room counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds sent before it")
    parser.add_argument("--rate", type=float, default=30.0, help="units per second per sender")
    parser.add_argument(
        "--senders", type=int, choices=(1, 2), default=2, help="senders per room (default 2)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(at_most=3),
        help="UE worker processes (default: one per core but one, at most 3: the MF, one "
        "asyncio process, keeps a core to itself)",
    )
    parser.add_argument("--ice", action="store_true", help="UEs offer ICE (default: IMS, none)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--profile", type=Path, help="run the MF under cProfile (slower), stats written here"
    )
    parser.add_argument(
        "--profile-clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="the profiler's clock: the MF's CPU time (default; a preempted MF's wait does "
        "not count), or wall time (python -m cProfile)",
    )
    parser.add_argument(
        "--gc",
        default="on",
        choices=("on", "off", "freeze"),
        help="experiment: run the MF with the cyclic garbage collector off, or frozen after "
        "the imports (default on)",
    )
    parser.add_argument(
        "--sctp",
        default="tuned",
        help="variants to compare in this run, comma-separated: aiortc (a SACK per "
        "packet, no bundling, no fast paths), tuned (the defaults), slowpath (the defaults "
        "without the SCTP send and SACK fast paths), openssl (OpenSSL for every DTLS record), "
        "baseline (--baseline-src's build); default: tuned",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="another checkout's src folder: the 'baseline' variant's MF runs that build",
    )
    parser.add_argument(
        "--trace",
        metavar="PREFIX",
        help="write every unit's (send time, latency, receiver) to PREFIX-<rooms>.csv",
    )
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.rooms.split(",") if n.strip()]
    variants = [v.strip() for v in args.sctp.split(",") if v.strip()]
    unknown = set(variants) - set(SCTP_VARIANTS)
    if unknown or not variants:
        parser.error(f"--sctp: choose among {', '.join(SCTP_VARIANTS)}")
    if ("baseline" in variants) != (args.baseline_src is not None):
        parser.error("--baseline-src goes with the variant 'baseline' in --sctp, and back")

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    load_before = os.getloadavg()
    fleet = Fleet(max(1, args.workers), _Worker)  # first: a failure must not leave an MF
    with tempfile.TemporaryDirectory(prefix="relay-latency-") as tmp:
        mfs: dict[str, Any] = {}
        try:
            for variant in dict.fromkeys(variants):  # a variant named twice: one MF
                workdir = Path(tmp) / variant
                workdir.mkdir()
                profile = args.profile
                if profile is not None and len(variants) > 1:
                    profile = profile.with_name(f"{profile.stem}-{variant}{profile.suffix}")
                if profile is not None and args.profile_clock == "cpu":
                    python = cpu_profiling_python(profile.resolve(), workdir)
                else:
                    python = mf_python(workdir, profile=profile, gc=args.gc)
                if variant == "baseline":
                    python = baseline_python(args.baseline_src.resolve(), workdir)
                mfs[variant] = start_mf(
                    workdir,
                    settings=SCTP_VARIANTS[variant],
                    python=python,
                    on_failure=fleet.close,
                )
            for rooms in levels:
                for variant in variants:
                    row = run_level(mfs[variant], fleet, rooms, args, variant)
                    failures.extend(row.pop("failures"))
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
        finally:
            fleet.close()
            for variant, mf in mfs.items():
                code = mf.stop(timeout=120 if args.profile is not None else 15)
                if code != 0:
                    failures.append(f"MF ({variant}) exited with {code}")
    load_after = os.getloadavg()
    print(
        f"\n{describe_machine()}, {args.workers} UE worker(s), {args.rate:g} units/s per sender, "
        f"{args.senders} sender(s) per room, {args.seconds:g} s measured after {args.warmup:g} s, "
        f"MF gc {args.gc}, "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(markdown(rows))
    if args.profile is not None and args.profile_clock == "cpu":
        for variant in dict.fromkeys(variants):
            profile = args.profile
            if len(variants) > 1:
                profile = profile.with_name(f"{profile.stem}-{variant}{profile.suffix}")
            if variant != "baseline" and profile.exists():
                print(datagrams_per_unit(profile))
    for failure in failures[:20]:
        print(f"FAILURE: {failure}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "failures": failures}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
