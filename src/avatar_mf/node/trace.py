"""The SIP message trace, switched on and off at run time (like Kamailio's siptrace or
FreeSWITCH's ``sofia profile ... siptrace on``).

The SIP endpoint (:mod:`avatar_mf.transport.endpoint`, the RFC 3261 section 18 edge) hands
every message it receives and sends to :meth:`SipTrace.tap`; while the trace is off that is
one attribute test. Switched on for the whole node or for chosen Call-IDs, each traced
message goes to:

* the log: a line of the ``avatar_mf.trace`` logger with the direction, the transport, both
  addresses, the Call-ID and the whole message (``sip`` field), always;
* a pcap file, if asked: each message as a packet with a synthetic IP and UDP/TCP header
  (:mod:`avatar_mf.node.capture`), readable by Wireshark and tcpdump;
* a Homer collector, if asked: each message as a HEP3 packet over UDP.

An incoming message is traced as the transport parsed it (serialized again, before the
``received``/``rport`` stamping of RFC 3261 18.2.1); an outgoing one as sent. Driven by the
admin API (``/trace``) and ``avatar-mf trace``. A failing sink (disk full, collector
unreachable) is logged once and closed; the trace goes on with the others.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from avatar_mf.node.capture import (
    MAX_SEGMENT,
    Endpoints,
    hep3_packet,
    ip_packet,
    pcap_global_header,
    pcap_record,
)
from avatar_mf.sip.message import Message, serialize
from avatar_mf.sip.peer import Peer

log = logging.getLogger(__name__)
#: The logger of the trace lines (raised to INFO while a trace is on).
trace_log = logging.getLogger("avatar_mf.trace")

__all__ = ["SipTrace", "TraceError", "parse_host_port"]


class TraceError(ValueError):
    """A trace request that cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` (an IP literal: the trace never waits on DNS)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise TraceError(f"expected IP:PORT for the HEP collector (got {text!r})") from None
    if not sep or not 0 < number < 65536:
        raise TraceError(f"expected IP:PORT for the HEP collector (got {text!r})")
    return host, number


class _PcapSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: BinaryIO = path.open("xb")  # never overwrite: the admin API names it
        except FileExistsError:
            raise TraceError(f"{path} exists: name a new file", status=409) from None
        except OSError as exc:
            raise TraceError(f"cannot create {path}: {exc.strerror or exc}") from None
        self._file.write(pcap_global_header())
        self._file.flush()
        self._seq: dict[tuple[str, int, str, int], int] = {}
        self.packets = 0

    def write(self, ends: Endpoints, data: bytes, timestamp: float) -> None:
        key = (ends.src, ends.sport, ends.dst, ends.dport)
        for start in range(0, max(len(data), 1), MAX_SEGMENT):
            segment = data[start : start + MAX_SEGMENT]
            seq = self._seq.get(key, 1)
            self._seq[key] = seq + len(segment)
            packet = ip_packet(ends, segment, seq=seq, ident=self.packets)
            self._file.write(pcap_record(timestamp, packet))
            self.packets += 1
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _HepSink:
    def __init__(self, target: tuple[str, int], capture_id: int) -> None:
        self.target = target
        self._capture_id = capture_id
        family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self.packets = 0

    def write(self, ends: Endpoints, data: bytes, timestamp: float, call_id: str) -> None:
        packet = hep3_packet(
            ends, data[:MAX_SEGMENT], timestamp, capture_id=self._capture_id,
            correlation_id=call_id,
        )  # fmt: skip
        try:
            self._sock.sendto(packet, self.target)
        except BlockingIOError:
            return  # a full socket buffer drops a trace packet, never blocks the node
        self.packets += 1

    def close(self) -> None:
        self._sock.close()


@dataclass
class _State:
    all_calls: bool = False
    call_ids: set[str] = field(default_factory=set)

    @property
    def on(self) -> bool:
        return self.all_calls or bool(self.call_ids)


class SipTrace:
    """The node's SIP trace: off until :meth:`enable`."""

    def __init__(
        self,
        *,
        local_host: str,
        local_port: Callable[[str], int],
        wall_clock: Callable[[], float],
        capture_id: int = 0,
    ) -> None:
        """``local_host``: the node's SIP address as traces show it (an IP literal; the
        unspecified address otherwise); ``local_port(transport)``: the listener's port."""
        self._local_host = local_host
        self._local_port = local_port
        self._wall_clock = wall_clock
        self._capture_id = capture_id
        self._state = _State()
        self._pcap: _PcapSink | None = None
        self._hep: _HepSink | None = None
        self.messages = 0

    @property
    def active(self) -> bool:
        return self._state.on

    def status(self) -> dict[str, object]:
        """What ``GET /trace`` answers."""
        return {
            "on": self._state.on,
            "all_calls": self._state.all_calls,
            "call_ids": sorted(self._state.call_ids),
            "pcap": str(self._pcap.path) if self._pcap is not None else None,
            "hep": f"{self._hep.target[0]}:{self._hep.target[1]}" if self._hep else None,
            "messages": self.messages,
        }

    def enable(
        self, call_id: str | None = None, *, pcap: Path | None = None, hep: str | None = None
    ) -> None:
        """Trace ``call_id`` (None: every message), adding a pcap file and a HEP collector
        when given (each replaces the one before). Raises TraceError, changing nothing."""
        target = parse_host_port(hep) if hep is not None else None
        new_pcap = _PcapSink(pcap) if pcap is not None else None
        if new_pcap is not None:
            if self._pcap is not None:
                self._pcap.close()
            self._pcap = new_pcap
        if target is not None:
            if self._hep is not None:
                self._hep.close()
            self._hep = _HepSink(target, self._capture_id)
        if call_id is None:
            self._state.all_calls = True
        else:
            self._state.call_ids.add(call_id)
        if trace_log.level == logging.NOTSET or trace_log.level > logging.INFO:
            trace_log.setLevel(logging.INFO)
        log.info(
            "SIP trace on: %s%s%s",
            "every message" if call_id is None else f"call {call_id}",
            f", pcap {pcap}" if pcap is not None else "",
            f", HEP3 to {hep}" if hep is not None else "",
        )

    def disable(self, call_id: str | None = None) -> None:
        """Stop tracing ``call_id``, or everything (None); sinks close with the last one."""
        if call_id is None:
            self._state = _State()
        else:
            self._state.call_ids.discard(call_id)
        if not self._state.on:
            self._close_sinks()
            trace_log.setLevel(logging.NOTSET)
        log.info(
            "SIP trace off: %s (%d messages traced)",
            "everything" if call_id is None else f"call {call_id}",
            self.messages,
        )

    def close(self) -> None:
        self._state = _State()
        self._close_sinks()

    def _close_sinks(self) -> None:
        for sink in (self._pcap, self._hep):
            if sink is not None:
                sink.close()
        self._pcap = self._hep = None

    # -- the endpoint's tap ----------------------------------------------------------------

    def tap(self, direction: str, message: Message, data: bytes | None, peer: Peer) -> None:
        """A message received from (``"in"``) or sent to (``"out"``) ``peer``."""
        state = self._state
        if not state.on:
            return
        call_id = message.headers.get("Call-ID") or ""
        if not state.all_calls and call_id not in state.call_ids:
            return
        payload = data if data is not None else serialize(message)
        local_port = self._local_port(peer.transport)
        if direction == "in":
            ends = Endpoints(peer.host, peer.port, self._local_host, local_port, peer.transport)
        else:
            ends = Endpoints(self._local_host, local_port, peer.host, peer.port, peer.transport)
        self.messages += 1
        timestamp = self._wall_clock()
        trace_log.info(
            "SIP %s %s %s:%d -> %s:%d (%d bytes)",
            direction,
            peer.transport.upper(),
            ends.src,
            ends.sport,
            ends.dst,
            ends.dport,
            len(payload),
            extra={"call_id": call_id, "sip": payload.decode("utf-8", errors="replace")},
        )
        if self._pcap is not None:
            try:
                self._pcap.write(ends, payload, timestamp)
            except OSError as exc:
                log.error("SIP trace: pcap %s failed, closed: %s", self._pcap.path, exc)
                self._pcap.close()
                self._pcap = None
        if self._hep is not None:
            try:
                self._hep.write(ends, payload, timestamp, call_id)
            except OSError as exc:
                log.error("SIP trace: HEP3 to %s failed, closed: %s", self._hep.target, exc)
                self._hep.close()
                self._hep = None
