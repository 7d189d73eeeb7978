"""SIP transaction timer values (RFC 3261 section 17 and Table 4 of appendix A; RFC 6026 8.11).

Every timer is derived from three settings:

* T1 (default 500 ms): RTT estimate, RFC 3261 17.1.1.1;
* T2 (default 4 s): the cap for non-INVITE request and INVITE response retransmission intervals;
* T4 (default 5 s): the time a message can stay in the network.

=====  =========================================  =====================  ==================
Timer  Meaning                                    Unreliable (UDP)       Reliable (TCP/TLS)
=====  =========================================  =====================  ==================
A      INVITE request retransmit interval         T1, doubling, no cap   not used
B      INVITE client transaction timeout          64*T1                  64*T1
D      wait for response retransmissions          max(32 s, 64*T1)       0
E      non-INVITE request retransmit interval     T1, doubling up to T2  not used
F      non-INVITE client transaction timeout      64*T1                  64*T1
G      INVITE final response retransmit interval  T1, doubling up to T2  not used
H      wait time for ACK receipt                  64*T1                  64*T1
I      wait time for ACK retransmissions          T4                     0
J      wait time for non-INVITE retransmissions   64*T1                  0
K      wait time for response retransmissions     T4                     0
L      INVITE server Accepted state (RFC 6026)    64*T1                  64*T1
M      INVITE client Accepted state (RFC 6026)    64*T1                  64*T1
=====  =========================================  =====================  ==================

Timer Trying (this product's, not an RFC name): RFC 3261 17.2.1 requires the INVITE server
transaction to send 100 (Trying) unless it "knows that the TU will generate a provisional or
final response within 200 ms"; the MF answers most INVITEs within a few milliseconds, so it
sends the 100 only when the TU has sent nothing by ``trying`` seconds (:data:`NODE_TRYING`,
100 ms, in the node; 0, at once, by default).

Timer D: RFC 3261 asks for "at least 32 seconds" on unreliable transports, because that is how
long the server keeps retransmitting its final response (Timer H = 64*T1 with the default T1).
When T1 is raised the server retransmits for longer, so D follows 64*T1 when that is larger.

Retransmission timers (A, E, G) are ``None`` on reliable transports: they are never armed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["NODE_TRYING", "TimerConfig", "TimerName"]


class TimerName(StrEnum):
    """The RFC 3261 / RFC 6026 timer names. There is no Timer C here (proxies only)."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 -- the RFC's name for the timer
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "Trying"


#: The MF node's ``TimerConfig.trying``: 100 Trying only for an INVITE not answered within
#: 100 ms (RFC 3261 17.2.1 allows skipping it for answers within 200 ms).
NODE_TRYING = 0.1

#: RFC 3261 17.1.1.2: Timer D is "at least 32 seconds" for unreliable transports.
MIN_TIMER_D = 32.0


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2 and T4 in seconds, and every transaction timer derived from them.

    Attributes:
        t1: round-trip time estimate (RFC 3261 17.1.1.1); default 0.5 s.
        t2: maximum retransmission interval for non-INVITE requests and INVITE responses;
            default 4 s. Must be greater than ``t1``.
        t4: maximum time a message remains in the network; default 5 s.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    #: Seconds the INVITE server transaction waits for the TU's first response before it sends
    #: 100 (Trying) itself; 0 (the default here) sends it at once. Under 0.2 (RFC 3261
    #: 17.2.1's 200 ms). The MF node uses :data:`NODE_TRYING`.
    trying: float = 0.0

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not self.t1 < self.t2:
            raise ValueError(f"t1 ({self.t1}) must be less than t2 ({self.t2})")
        if not 0 <= self.trying < 0.2:
            raise ValueError(f"trying must be 0 or more and under 0.2 s, got {self.trying!r}")

    @property
    def sixty_four_t1(self) -> float:
        """64*T1: the transaction timeout (B, F, H) and the Accepted lifetime (L, M)."""
        return 64 * self.t1

    # -- INVITE client (RFC 3261 17.1.1.2, RFC 6026 7.2) ------------------------------------

    def timer_a(self, reliable: bool) -> float | None:
        """Initial INVITE retransmission interval; doubles on each firing (no cap)."""
        return None if reliable else self.t1

    def timer_b(self, reliable: bool) -> float:
        """INVITE client transaction timeout (Calling state)."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """Completed-state wait for final response retransmissions."""
        return 0.0 if reliable else max(MIN_TIMER_D, 64 * self.t1)

    def timer_m(self, reliable: bool) -> float:
        """Accepted-state lifetime of the INVITE client transaction (RFC 6026)."""
        return 64 * self.t1

    # -- non-INVITE client (RFC 3261 17.1.2.2) -----------------------------------------------

    def timer_e(self, reliable: bool) -> float | None:
        """Initial non-INVITE retransmission interval; doubles up to T2."""
        return None if reliable else self.t1

    def timer_f(self, reliable: bool) -> float:
        """Non-INVITE client transaction timeout."""
        return 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """Completed-state wait for response retransmissions."""
        return 0.0 if reliable else self.t4

    # -- INVITE server (RFC 3261 17.2.1, RFC 6026 7.1) ---------------------------------------

    def timer_g(self, reliable: bool) -> float | None:
        """Initial final-response retransmission interval; doubles up to T2."""
        return None if reliable else self.t1

    def timer_h(self, reliable: bool) -> float:
        """Completed-state wait for the ACK."""
        return 64 * self.t1

    def timer_i(self, reliable: bool) -> float:
        """Confirmed-state wait for ACK retransmissions."""
        return 0.0 if reliable else self.t4

    def timer_trying(self, reliable: bool) -> float:
        """Wait for the TU's first response before the INVITE server sends 100 Trying."""
        return self.trying

    def timer_l(self, reliable: bool) -> float:
        """Accepted-state lifetime of the INVITE server transaction (RFC 6026)."""
        return 64 * self.t1

    # -- non-INVITE server (RFC 3261 17.2.2) -------------------------------------------------

    def timer_j(self, reliable: bool) -> float:
        """Completed-state wait for request retransmissions."""
        return 0.0 if reliable else 64 * self.t1

    # -- retransmission back-off -------------------------------------------------------------

    def next_interval(self, name: TimerName, previous: float) -> float:
        """The next retransmission interval after ``previous`` for Timer A, E or G.

        A doubles without a cap (RFC 3261 17.1.1.2); E and G double up to T2 (17.1.2.2,
        17.2.1).
        """
        if name is TimerName.A:
            return 2 * previous
        if name is TimerName.E or name is TimerName.G:
            return min(2 * previous, self.t2)
        raise ValueError(f"Timer {name} is not a retransmission timer")

    def delay(self, name: TimerName, reliable: bool) -> float | None:
        """The (initial) value of timer ``name``; ``None`` when it is not used on the transport."""
        return _DELAYS[name](self, reliable)


_DELAYS: dict[TimerName, Callable[[TimerConfig, bool], float | None]] = {
    TimerName.A: TimerConfig.timer_a,
    TimerName.B: TimerConfig.timer_b,
    TimerName.D: TimerConfig.timer_d,
    TimerName.E: TimerConfig.timer_e,
    TimerName.F: TimerConfig.timer_f,
    TimerName.G: TimerConfig.timer_g,
    TimerName.H: TimerConfig.timer_h,
    TimerName.I: TimerConfig.timer_i,
    TimerName.J: TimerConfig.timer_j,
    TimerName.K: TimerConfig.timer_k,
    TimerName.L: TimerConfig.timer_l,
    TimerName.M: TimerConfig.timer_m,
    TimerName.TRYING: TimerConfig.timer_trying,
}
