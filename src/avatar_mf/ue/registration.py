"""The test UE's registration with a registrar (RFC 3261 section 10), sans-IO.

:class:`Registration` is the UAC side of one binding: it builds the REGISTER requests and reads
their responses, and keeps the binding alive by re-registering before it expires. It never
does I/O: requests leave through the ``send`` callback (the asyncio driver,
:class:`~avatar_mf.ue.listener.UeListener`, puts them in a client transaction and feeds the
outcome back with :meth:`Registration.on_response` or :meth:`Registration.on_failure`), and
time comes from an injected :class:`~avatar_mf.clock.Clock` (a fake one in the unit tests).

The clauses it follows:

* 10.2: Request-URI the registrar's domain (``sip:host:port``), To and From the address of
  record, Contact the UE's own address with an ``expires`` parameter, and an ``Expires``
  header as well (10.2.1.1);
* 10.2.4: every REGISTER of one UE reuses the same Call-ID and increments the CSeq, so the
  registrar can order them; a refresh is a new REGISTER for the same binding;
* 10.3 step 8: the 200 lists every binding of the AOR with the expiry the registrar granted
  (``expires`` parameter of our Contact, else the ``Expires`` header, else the requested value);
  the UE refreshes :attr:`Registration.refresh_margin` seconds before that (at the latest at half
  of it);
* 10.2.8 / 10.3 step 7: 423 Interval Too Brief carries ``Min-Expires``: the UE asks again with
  that value at once;
* 10.2.2: removal is ``Expires: 0`` (:meth:`Registration.unregister`).

Any other failure (a 4xx-6xx, no answer, a transport error) leaves the UE unregistered; it tries
again after :attr:`Registration.retry_after` seconds (a 503's ``Retry-After`` when given), so a
registrar that restarts (Kamailio keeps its bindings in memory) gets the UE back.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from avatar_mf.clock import Clock, TimerHandle
from avatar_mf.sip.build import new_call_id, new_tag
from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.headers import parse_name_addr
from avatar_mf.sip.message import Headers, Request, Response

__all__ = ["Registration", "RegistrationState", "RegistrationStatus", "granted_expires"]

RegistrationState = Literal["idle", "registering", "registered", "failed", "unregistered"]

_EXPIRES_PARAM = re.compile(r";\s*expires\s*=\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    """One outcome of a REGISTER, as :meth:`Registration.on_response` saw it.

    ``granted`` is the binding's lifetime in seconds (0 for a removal or a failure), ``status``
    the SIP status (None: no response), ``reason`` what went wrong ("" when registered).
    """

    state: RegistrationState
    status: int | None
    granted: int
    reason: str = ""


def _contact_uri(value: str) -> str | None:
    try:
        return parse_name_addr(value).uri
    except SipParseError:
        return None


def granted_expires(response: Response, contact_uri: str, requested: int) -> int:
    """The lifetime the registrar granted to the binding of ``contact_uri`` (RFC 3261 10.3
    step 8, 10.2.4): the ``expires`` parameter of that Contact in the 200, else the response's
    ``Expires`` header, else ``requested``. 0 when the 200 lists other bindings but not ours."""
    contacts = response.headers.get_list("Contact")
    for value in contacts:
        if _contact_uri(value) != contact_uri:
            continue
        match = _EXPIRES_PARAM.search(value.split(">", 1)[-1] if ">" in value else value)
        if match:
            return int(match.group(1))
        break
    else:
        if contacts:
            return 0
    header = response.headers.get("Expires")
    if header is not None and header.strip().isdigit():
        return int(header.strip())
    return requested


class Registration:
    """One UE binding at a registrar: REGISTER, refresh before expiry, retry, removal.

    ``send(request)`` is called with each REGISTER (without Via: the transport adds one); the
    driver reports its final response with :meth:`on_response`, or :meth:`on_failure` when there
    was none. ``on_change(status)`` hears every outcome.
    """

    def __init__(
        self,
        *,
        aor: str,
        registrar: str,
        contact: str,
        clock: Clock,
        send: Callable[[Request], None],
        expires: int = 600,
        refresh_margin: float = 30.0,
        retry_after: float = 30.0,
        on_change: Callable[[RegistrationStatus], None] | None = None,
        call_id: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        """
        :param aor: the address of record, e.g. ``sip:ue2@127.0.0.1:5070`` (To and From).
        :param registrar: the Request-URI, e.g. ``sip:127.0.0.1:5070``.
        :param contact: the UE's Contact header value (``<sip:...>;params``).
        :param expires: the lifetime to ask for, in seconds.
        :param refresh_margin: re-register this long before the granted expiry (at the latest
            at half of the granted lifetime).
        :param retry_after: seconds before trying again after a failure.
        """
        if expires <= 0:
            raise ValueError(f"expires must be positive, got {expires}")
        self.aor = aor
        self.registrar = registrar
        self.contact = contact
        self.contact_uri = _contact_uri(contact) or contact
        self.requested = expires
        self.refresh_margin = refresh_margin
        self.retry_after = retry_after
        self._clock = clock
        self._send = send
        self._on_change = on_change
        self._user_agent = user_agent
        self.call_id = call_id or new_call_id("ue")
        self._from_tag = new_tag()
        self._cseq = secrets.randbelow(2**16)
        self.state: RegistrationState = "idle"
        self.granted = 0
        """Seconds granted by the last 200 (0 when not registered)."""
        self.expires_at: float | None = None
        """Clock time the binding lapses (None when not registered)."""
        self.refresh_at: float | None = None
        """Clock time of the next REGISTER (refresh or retry), None when none is planned."""
        self.registrations = 0
        """Successful REGISTERs (initial and refreshes)."""
        self.last: RegistrationStatus | None = None
        self._timer: TimerHandle | None = None
        self._asking = expires
        self._removing = False

    # -- inputs -----------------------------------------------------------------------------

    def start(self) -> None:
        """Send the first REGISTER."""
        if self.state != "idle":
            raise RuntimeError(f"registration already {self.state}")
        self._register(self.requested)

    def on_response(self, response: Response) -> RegistrationStatus:
        """The final response to the REGISTER last sent."""
        if response.status < 200:
            raise ValueError("on_response takes final responses only")
        if self._removing:
            self._cancel_timer()
            self.expires_at = None
            return self._report("unregistered", response.status, 0)
        if 200 <= response.status < 300:
            granted = granted_expires(response, self.contact_uri, self._asking)
            if granted <= 0:
                return self._fail(response.status, "the registrar did not keep the binding")
            now = self._clock.now()
            self.granted = granted
            self.expires_at = now + granted
            self.registrations += 1
            self._schedule(max(granted - self.refresh_margin, granted / 2))
            return self._report("registered", response.status, granted)
        min_expires = response.headers.get("Min-Expires")
        if response.status == 423 and min_expires and min_expires.strip().isdigit():
            asked = int(min_expires.strip())
            if asked > self._asking:  # 10.2.8: ask again with at least Min-Expires
                self._register(asked)
                return self._report("registering", response.status, 0, "interval too brief")
        retry = self.retry_after
        header = response.headers.get("Retry-After")
        if header is not None and header.split(";")[0].strip().isdigit():
            retry = float(header.split(";")[0].strip())
        return self._fail(response.status, f"{response.status} {response.reason}", retry)

    def on_failure(self, reason: str) -> RegistrationStatus:
        """The REGISTER got no final response (timeout, transport error)."""
        if self._removing:
            self._cancel_timer()
            return self._report("unregistered", None, 0, reason)
        return self._fail(None, reason)

    def unregister(self) -> Request | None:
        """Stop refreshing; return the REGISTER with ``Expires: 0`` that removes the binding
        (10.2.2) when there is one to remove, else None. Its outcome still goes through
        :meth:`on_response` / :meth:`on_failure`."""
        self._cancel_timer()
        self.refresh_at = None
        had_binding = self.state in ("registered", "registering")
        self._removing = True
        if not had_binding:
            self.state = "unregistered"
            return None
        self.state = "unregistered"
        return self._request(0)

    def close(self) -> None:
        """Stop every timer without sending anything."""
        self._cancel_timer()
        self.refresh_at = None
        self._removing = True

    # -- internals --------------------------------------------------------------------------

    def _request(self, expires: int) -> Request:
        self._cseq += 1
        headers: list[tuple[str, str]] = [
            ("Max-Forwards", "70"),
            ("From", f"<{self.aor}>;tag={self._from_tag}"),
            ("To", f"<{self.aor}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"{self.contact};expires={expires}"),
            ("Expires", str(expires)),
        ]
        if self._user_agent:
            headers.append(("User-Agent", self._user_agent))
        return Request("REGISTER", self.registrar, Headers.of(headers))

    def _register(self, expires: int) -> None:
        self._cancel_timer()
        self.refresh_at = None
        self._asking = expires
        if self.state in ("idle", "failed", "unregistered"):
            self.state = "registering"
        self._send(self._request(expires))

    def _schedule(self, delay: float) -> None:
        self._cancel_timer()
        self.refresh_at = self._clock.now() + delay
        self._timer = self._clock.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._removing:
            return
        if self.expires_at is not None and self._clock.now() >= self.expires_at:
            self.expires_at = None
            self.granted = 0
            self.state = "registering"
        self._register(self.requested)

    def _fail(
        self, status: int | None, reason: str, retry: float | None = None
    ) -> RegistrationStatus:
        delay = self.retry_after if retry is None else retry
        lapsed = self.expires_at is None or self._clock.now() >= self.expires_at
        if lapsed:
            self.granted = 0
            self.expires_at = None
        if self.expires_at is not None:  # still bound: retry, but before the binding lapses
            delay = min(delay, max(0.0, (self.expires_at - self._clock.now()) / 2))
        self._schedule(delay)
        return self._report("registered" if not lapsed else "failed", status, self.granted, reason)

    def _report(
        self, state: RegistrationState, status: int | None, granted: int, reason: str = ""
    ) -> RegistrationStatus:
        self.state = state
        result = RegistrationStatus(state, status, granted, reason)
        self.last = result
        if self._on_change is not None:
            self._on_change(result)
        return result

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
