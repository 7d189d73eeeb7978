"""Reception statistics per source and the figures of RTCP reports (RFC 3550 appendix A).

:class:`ReceiveStats` keeps, for one SSRC:

* sequence number validation with probation (A.1): a source is valid after
  ``MIN_SEQUENTIAL`` (2) packets in sequence; a jump of more than ``MAX_DROPOUT`` (3000) or a
  step back of more than ``MAX_MISORDER`` (100) is a bad packet, unless the next packet
  follows it, which means the sender restarted: the statistics start again;
* the extended highest sequence number, cumulative loss and fraction lost per report
  interval (A.3);
* the interarrival jitter (A.8), in RTP timestamp units: ``J += (|D| - J) / 16``;
* the last SR from the source (its NTP middle 32 bits and when it arrived) for LSR/DLSR.

:func:`round_trip_time` gives the RTT from a report block about one of our own streams
(section 6.4.1: ``A - LSR - DLSR``). :class:`SendStats` counts what we sent for our SRs.

Pure: arrival times are passed in (seconds, any monotonic origin; the NTP wall clock only
where RFC 3550 needs it).
"""

from __future__ import annotations

from dataclasses import dataclass

from avatar_mf.rtp.rtcp import ReportBlock, ntp_middle32

MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
RTP_SEQ_MOD = 1 << 16


@dataclass(frozen=True, slots=True)
class ReceptionFigures:
    """What the statistics say now (for metrics and the per-call end record)."""

    received: int
    expected: int
    lost: int  # cumulative, may be negative with duplicates
    loss_ratio: float  # lost / expected over the whole stream (0 when nothing expected)
    jitter_ms: float


class ReceiveStats:
    """RFC 3550 A.1/A.3/A.8 statistics for one source at RTP clock ``clock_rate``."""

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = MIN_SEQUENTIAL
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self._transit: float | None = None
        self._started = False
        self._last_sr: int = 0
        self._last_sr_arrival: float | None = None

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    @property
    def valid(self) -> bool:
        """True once the source has passed probation."""
        return self._started and self.probation == 0

    def on_packet(self, seq: int, rtp_timestamp: int, arrival: float) -> bool:
        """Account one packet; False when it is not (yet) valid and should be dropped."""
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) % RTP_SEQ_MOD
            self.probation = MIN_SEQUENTIAL
        if not self._update_seq(seq):
            return False
        self._update_jitter(rtp_timestamp, arrival)
        return True

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) % RTP_SEQ_MOD
        if self.probation:
            if seq == (self.max_seq + 1) % RTP_SEQ_MOD:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # Two sequential packets after a big jump: the source restarted.
                self._init_seq(seq)
                self._transit = None
            else:
                self.bad_seq = (seq + 1) % RTP_SEQ_MOD
                return False
        # else: a duplicate or reordered packet, counted.
        self.received += 1
        return True

    def _update_jitter(self, rtp_timestamp: int, arrival: float) -> None:
        transit = arrival * self.clock_rate - rtp_timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d > (1 << 31):  # a timestamp wrap between the two packets
                d = abs(d - (1 << 32))
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.valid else 0

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def on_sender_report(self, ntp_timestamp: int, arrival: float) -> None:
        """Remember the source's last SR (for LSR and DLSR in our reports)."""
        self._last_sr = ntp_middle32(ntp_timestamp)
        self._last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        """The report block about this source for an SR/RR sent at ``now`` (A.3); starts a
        new interval for the fraction lost."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        cumulative = max(-(1 << 23), min((1 << 23) - 1, self.lost))
        dlsr = 0
        if self._last_sr_arrival is not None:
            dlsr = min(0xFFFFFFFF, max(0, int((now - self._last_sr_arrival) * 65536)))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            cumulative_lost=cumulative,
            highest_seq=self.extended_max & 0xFFFFFFFF,
            jitter=min(0xFFFFFFFF, int(self.jitter)),
            lsr=self._last_sr,
            dlsr=dlsr,
        )

    def figures(self) -> ReceptionFigures:
        expected = self.expected
        return ReceptionFigures(
            received=self.received,
            expected=expected,
            lost=self.lost,
            loss_ratio=max(0.0, self.lost / expected) if expected > 0 else 0.0,
            jitter_ms=self.jitter * 1000.0 / self.clock_rate,
        )


def round_trip_time(block: ReportBlock, arrival_ntp: int) -> float | None:
    """RTT in seconds from a report block about our stream that arrived at NTP time
    ``arrival_ntp`` (RFC 3550 6.4.1: A - LSR - DLSR); ``None`` when the peer had no SR from us
    yet (LSR 0) or the figures are inconsistent."""
    if block.lsr == 0:
        return None
    rtt = (ntp_middle32(arrival_ntp) - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt > 0x7FFFFFFF:  # negative: clocks or figures inconsistent
        return None
    return rtt / 65536.0


class SendStats:
    """What one of our streams sent, for its SR sender info (RFC 3550 6.4.1)."""

    def __init__(self) -> None:
        self.packets = 0
        self.octets = 0
        self.last_rtp_timestamp: int | None = None
        self.last_sent: float | None = None

    def on_sent(self, payload_size: int, rtp_timestamp: int, now: float) -> None:
        self.packets += 1
        self.octets += payload_size
        self.last_rtp_timestamp = rtp_timestamp
        self.last_sent = now

    def rtp_timestamp_at(self, now: float, clock_rate: int) -> int | None:
        """The RTP timestamp corresponding to ``now`` (extrapolated from the last packet)."""
        if self.last_rtp_timestamp is None or self.last_sent is None:
            return None
        return (self.last_rtp_timestamp + round((now - self.last_sent) * clock_rate)) & 0xFFFFFFFF
