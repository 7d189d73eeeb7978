"""DTLS for a data-only association, as IMS UEs run it (RFC 8261, RFC 8122, RFC 8842).

aiortc's ``RTCDtlsTransport`` is used as is, with two behaviours adjusted for IMS UEs:

1. It fails a handshake that did not negotiate a DTLS-SRTP profile (``use_srtp``), although a
   data channel association carries no SRTP and RFC 8261 does not require the extension. Here a
   handshake without ``use_srtp`` is accepted (no SRTP keys are derived).
2. It verifies only sha-256/384/512 fingerprints and fails when the peer offers only others,
   while IMS offers often carry ``a=fingerprint:SHA-1``. Here sha-1 and sha-224 are verified too
   (RFC 8122 section 5 lists them; RFC 8122 prefers the certificate's signature hash but the
   peer's choice is what we must check).

Both are overrides of private methods of aiortc 1.16 (``_validate_peer_identity``,
``_setup_srtp``), which is why aiortc is pinned. Everything else, including the peer certificate
verification callback and the fingerprint rule "at least one supported, all supported match",
is unchanged.

3. Once the handshake is over and the peer's first application data record came through
   OpenSSL, records of the negotiated AEAD suite are sealed and opened by
   :mod:`~avatar_mf.media.dtls_records` instead of OpenSSL (``fast_records``, the default;
   ``media.dtls_fast_records = false`` keeps OpenSSL for every record). RFC 6347 4.1: both
   sides use epoch 1 from then on. The switch happens only when

   - the version is DTLS 1.2 and the suite one of ``AEAD_SUITES`` (CBC suites and DTLS 1.3
     stay with OpenSSL throughout);
   - the peer's application data record arrived alone in its datagram and the derived keys
     open it to the bytes OpenSSL returned (a self-check of the key block: on a mismatch
     OpenSSL keeps every record);
   - the sequence number of OpenSSL's last epoch-1 record is known: every record OpenSSL
     writes passes :meth:`ImsDtlsTransport._write_ssl`, which notes it, and the fast path
     continues after it. Application data from the peer proves it has finished its handshake
     (TLS 1.2: nothing before the Finished it received from us), so OpenSSL has no flight left
     to retransmit.

   After the switch, a received record that is not epoch-1 application data (an alert, a
   late handshake retransmission) still goes to OpenSSL (a close_notify ends the transport as
   before), but nothing OpenSSL writes in epoch 1 reaches the wire: its sequence numbers are
   behind the fast path's, and an AEAD nonce must never be used twice with a key (so a
   renegotiation, which WebRTC peers do not start, would not complete). The close_notify of
   :meth:`ImsDtlsTransport.stop` is sealed by the fast path.

   Once the fast record layer took over, the packet path below offers the peer's datagrams
   to :meth:`ImsDtlsTransport.receive_now` synchronously, from the socket's callback (issue
   16: aiortc's receive task costs a future, a queue entry and a task step per datagram):
   a datagram that is one epoch-1 application data record is opened there and its plaintext
   handed to the data receiver's own synchronous entry (``receive_now`` of
   :class:`~avatar_mf.media.sctp_transport.ImsSctpTransport`); anything else (a handshake
   retransmission, an alert, several records in one datagram, SRTP and SRTCP, RFC 7983) is
   left to the task as before, and the packet path keeps every later datagram behind it.
   :meth:`ImsDtlsTransport.send_data_now` seals and sends without a coroutine.

4. SRTP keys (RFC 5764 4.2) are derived when first needed, not at the end of every handshake
   that negotiated ``use_srtp``: browsers offer it on every association, but a data-only call
   never uses SRTP, and the export and two libsrtp sessions cost ~25 us of a set-up (issue 16).
   :meth:`ImsDtlsTransport.derive_srtp_keys` derives them (a subclass's ``_srtp_wanted`` may ask
   for them at once); the first SRTP or SRTCP packet received does too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

import pylibsrtp
from aiortc import RTCIceTransport, clock
from aiortc.rtcdtlstransport import (
    DataReceiver,
    RTCCertificate,
    RTCDtlsParameters,
    RTCDtlsTransport,
    State,
)
from aiortc.rtp import is_rtcp
from OpenSSL import SSL

from avatar_mf.media.certificate import certificate_fingerprint
from avatar_mf.media.dtls_records import (
    AEAD_SUITES,
    ALERT_CLOSE_NOTIFY,
    CONTENT_ALERT,
    CONTENT_APPLICATION_DATA,
    RecordLayer,
    ReplayWindow,
    SequenceExhausted,
    derive_key_block,
    split_records,
)
from avatar_mf.media.packet_path import PacketPath
from avatar_mf.media.params import SUPPORTED_FINGERPRINT_ALGORITHMS

logger = logging.getLogger(__name__)


def fingerprints_match(
    peer_fingerprints: dict[str, str], remote: list[tuple[str, str]]
) -> tuple[bool, str]:
    """Apply aiortc's rule to a wider set of hash functions: at least one fingerprint with a
    supported hash, and every supported one matches. ``peer_fingerprints`` maps hash names to
    the peer certificate's fingerprints. Returns (ok, reason)."""
    supported = [(a.lower(), v) for a, v in remote if a.lower() in peer_fingerprints]
    if not supported:
        return False, "no fingerprint with a supported hash function"
    for algorithm, value in supported:
        if value.upper() != peer_fingerprints[algorithm]:
            return False, f"{algorithm} fingerprint mismatch"
    return True, ""


class ImsDtlsTransport(RTCDtlsTransport):
    """``RTCDtlsTransport`` accepting data-only handshakes and SHA-1 fingerprints, with
    application data records sealed and opened outside OpenSSL after the handshake
    (``fast_records``; see the module docstring)."""

    failure_reason: str | None = None
    """Why the handshake was rejected after it completed (fingerprint), else None."""

    def __init__(
        self,
        transport: RTCIceTransport,
        certificates: list[RTCCertificate],
        *,
        fast_records: bool = True,
    ) -> None:
        super().__init__(transport, certificates)
        # The same object, typed as what it is (aiortc's annotation says RTCIceTransport).
        self._path = cast(PacketPath, transport)
        self._fast_records = fast_records
        #: The fast record layer once it took over, else None.
        self.records: RecordLayer | None = None
        # The sequence number after the last epoch-1 record OpenSSL wrote (None: none yet).
        self._openssl_next_write: int | None = None
        self._timer_done = False  # aiortc's __handshake_done (name-mangled there)
        # A DTLS-SRTP profile was negotiated but its keys are not derived yet (item 4).
        self._srtp_pending = False
        # The data receiver's synchronous entry, once the fast record layer took over.
        self._deliver_now: Callable[[bytes], None] | None = None
        self.records_dropped = 0
        """Records the fast path dropped: replayed, too old, not authentic, or OpenSSL's
        epoch-1 output after the switch."""

    def _validate_peer_identity(self, remoteParameters: RTCDtlsParameters) -> None:
        # Replaces aiortc's check, which ignores sha-1 fingerprints (see the module docstring).
        assert self._ssl is not None
        certificate = self._ssl.get_peer_certificate(as_cryptography=True)
        if certificate is None:
            self.failure_reason = "no peer certificate"
            self._set_state(State.FAILED)
            return
        # Only the hash functions the peer's a=fingerprint lines use (one, typically): each
        # digest of the certificate costs CPU on every call set-up.
        wanted = {f.algorithm.lower() for f in remoteParameters.fingerprints}
        peer = {
            a: certificate_fingerprint(certificate, a)
            for a in SUPPORTED_FINGERPRINT_ALGORITHMS
            if a in wanted
        }
        ok, reason = fingerprints_match(
            peer, [(f.algorithm, f.value) for f in remoteParameters.fingerprints]
        )
        if not ok:
            logger.info("DTLS peer rejected: %s", reason)
            self.failure_reason = reason
            self._set_state(State.FAILED)

    def _setup_srtp(self) -> None:
        # aiortc fails the transport when no DTLS-SRTP profile was negotiated; a data channel
        # association needs none (see the module docstring), so only derive SRTP keys when one was.
        # And only when they are wanted (item 4 of the module docstring).
        assert self._ssl is not None
        if not self._ssl.get_selected_srtp_profile():
            logger.debug("DTLS handshake without use_srtp: data only")
            return
        self._srtp_pending = True
        if self._srtp_wanted():
            self.derive_srtp_keys()

    def _srtp_wanted(self) -> bool:
        """Whether to derive the SRTP keys as soon as the handshake ends (aiortc's way, the
        default) rather than when first needed (:meth:`derive_srtp_keys`)."""
        return True

    def derive_srtp_keys(self) -> bool:
        """Derive the SRTP keys now if the handshake negotiated a DTLS-SRTP profile and they
        were not derived yet (RFC 5764 4.2); returns whether SRTP keys exist."""
        if self._srtp_pending:
            self._srtp_pending = False
            super()._setup_srtp()
            self._srtp_keys_derived()
        return self._tx_srtp is not None

    def _srtp_keys_derived(self) -> None:
        """Called once the SRTP sessions exist (for subclasses)."""

    # -- the record layer --------------------------------------------------------------------

    async def _recv_next(self) -> None:
        # aiortc 1.16's _recv_next, with the fast record path (module docstring, item 3).
        records = self.records
        if records is None:
            await self._recv_next_openssl()
            return
        data = await self.transport._recv()
        if not data:
            return  # an empty datagram from the peer's address: nothing to read
        first_byte = data[0]
        if (
            first_byte == CONTENT_APPLICATION_DATA
            and len(data) > 13
            and data[3] == 0
            and data[4] == 1
            and len(data) == 13 + (data[11] << 8 | data[12])
        ):
            # One epoch-1 application data record: the common case.
            plaintext = records.open_datagram(data)
            if plaintext is None:
                self.records_dropped += 1
            elif plaintext and self._data_receiver is not None:
                await self._data_receiver._handle_data(plaintext)
        elif 19 < first_byte < 64:
            receiver = self._data_receiver
            for record in split_records(data):
                if record.content_type == CONTENT_APPLICATION_DATA and record.epoch == 1:
                    plaintext = records.open(record)
                    if plaintext is None:
                        self.records_dropped += 1
                    elif plaintext and receiver is not None:
                        await receiver._handle_data(plaintext)
                else:
                    # Alerts (close_notify), late handshake records: OpenSSL's, as before.
                    await self._openssl_record(bytes(record.raw))
        elif 127 < first_byte < 192 and (self._rx_srtp or self._srtp_pending):
            await self._receive_srtp(data)

    async def _openssl_record(self, record: bytes) -> None:
        assert self._ssl is not None
        self._ssl.bio_write(record)
        try:
            data: bytes | None = self._ssl.recv(1500)
        except SSL.ZeroReturnError:
            data = None
        except SSL.Error:
            data = b""
        await self._write_ssl()
        if data is None:
            logger.debug("DTLS shutdown by remote party")
            raise ConnectionError
        if data and self._data_receiver is not None:
            await self._data_receiver._handle_data(data)

    async def _recv_next_openssl(self) -> None:
        # aiortc 1.16's _recv_next, and the switch to the fast path.
        assert self._ssl is not None
        timeout = None
        if not self._timer_done:
            timeout = self._ssl.DTLSv1_get_timeout()
            if timeout is None and self.encrypted:
                self._timer_done = True
        if timeout is not None:
            try:
                data = await asyncio.wait_for(self.transport._recv(), timeout=timeout)
            except TimeoutError:
                self._ssl.DTLSv1_handle_timeout()
                await self._write_ssl()
                return
        else:
            data = await self.transport._recv()
        if not data:
            return  # an empty datagram from the peer's address: nothing to read
        first_byte = data[0]
        if 19 < first_byte < 64:
            self._ssl.bio_write(data)
            try:
                plaintext: bytes | None = self._ssl.recv(1500)
            except SSL.ZeroReturnError:
                plaintext = None
            except SSL.Error:
                plaintext = b""
            await self._write_ssl()
            if plaintext is None:
                logger.debug("DTLS shutdown by remote party")
                raise ConnectionError
            if plaintext:
                if self._fast_records and self._state == State.CONNECTED:
                    self._take_over(data, plaintext)
                if self._data_receiver is not None:
                    await self._data_receiver._handle_data(plaintext)
        elif 127 < first_byte < 192 and (self._rx_srtp or self._srtp_pending):
            await self._receive_srtp(data)

    async def _receive_srtp(self, data: bytes) -> None:
        # aiortc 1.16's SRTP branch of _recv_next (the keys derived first if still pending).
        if self._srtp_pending:
            self.derive_srtp_keys()
        arrival_time_ms = clock.current_ms()
        try:
            if is_rtcp(data):
                await self._handle_rtcp_data(self._rx_srtp.unprotect_rtcp(data))
            else:
                data = self._rx_srtp.unprotect(data)
                await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)

    def _take_over(self, datagram: bytes, plaintext: bytes) -> None:
        """Switch to the fast record layer if ``datagram`` (one record OpenSSL just opened
        to ``plaintext``) allows it (module docstring, item 3); else stay with OpenSSL."""
        self._fast_records = False  # one attempt: the first application data decides
        ssl = self._ssl
        assert ssl is not None
        suite = AEAD_SUITES.get(ssl.get_cipher_name() or "")
        write_next = self._openssl_next_write
        if suite is None or write_next is None or ssl.get_protocol_version_name() != "DTLSv1.2":
            logger.debug("DTLS fast path off: %s", ssl.get_cipher_name())
            return
        records = list(split_records(datagram))
        if len(records) != 1 or records[0].epoch != 1 or len(records[0].raw) != len(datagram):
            self._fast_records = True  # try again with the next one
            return
        record = records[0]
        master, client_random, server_random = (
            ssl.master_key(),
            ssl.client_random(),
            ssl.server_random(),
        )
        if master is None or client_random is None or server_random is None:
            return
        layer = RecordLayer(
            suite,
            derive_key_block(suite, master, client_random, server_random),
            is_client=self._role == "client",
            next_write_sequence=write_next,
            read_window=ReplayWindow(record.sequence - 1, older_seen=True),
        )
        if layer.open(record) != plaintext:
            logger.warning("DTLS fast path off: the derived keys do not open the peer's record")
            return
        self.records = layer
        receiver = self._data_receiver
        deliver = getattr(receiver, "receive_now", None)
        if deliver is not None:
            self._deliver_now = deliver
            self._path.set_fast_receiver(self.receive_now)

    def _unregister_data_receiver(self, receiver: DataReceiver) -> None:
        super()._unregister_data_receiver(receiver)
        if self._data_receiver is None:
            self._deliver_now = None  # a stopped association gets nothing more

    def receive_now(self, data: bytes) -> bool:
        """Take one datagram synchronously (module docstring, item 3): True if it was one
        epoch-1 application data record (opened, or dropped as the fast path drops records),
        False (untouched) for anything the receive task must take."""
        records = self.records
        if (
            records is None
            or self._state != State.CONNECTED
            or len(data) <= 13
            or data[0] != CONTENT_APPLICATION_DATA
            or data[3] != 0
            or data[4] != 1
            or len(data) != 13 + (data[11] << 8 | data[12])
        ):
            return False
        deliver = self._deliver_now
        if deliver is None:
            return False
        plaintext = records.open_datagram(data)
        if plaintext is None:
            self.records_dropped += 1
        elif plaintext:
            deliver(plaintext)
        return True

    @property
    def sends_now(self) -> bool:
        """Whether :meth:`send_data_now` can send (the fast record layer is on, connected)."""
        return self.records is not None and self._state == State.CONNECTED

    def send_data_now(self, data: bytes) -> None:
        """Seal ``data`` as one application data record and send it, without a coroutine;
        only while :attr:`sends_now`. Raises ConnectionError when it cannot send."""
        records = self.records
        if records is None or self._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted data, not connected")
        try:
            sealed = records.seal(CONTENT_APPLICATION_DATA, data)
        except SequenceExhausted as exc:
            raise ConnectionError(str(exc)) from exc
        self._path.send_now(sealed)

    async def _write_ssl(self) -> None:
        # aiortc 1.16's _write_ssl, noting the sequence numbers OpenSSL used (before the switch)
        # and keeping its epoch-1 records off the wire (after it).
        assert self._ssl is not None
        try:
            data = self._ssl.bio_read(1500)
        except SSL.Error:
            data = b""
        if not data:
            return
        if self.records is not None:
            records = list(split_records(data))
            data = b"".join(bytes(r.raw) for r in records if r.epoch == 0)
            self.records_dropped += sum(1 for r in records if r.epoch != 0)
            if not data:
                return
        elif self._fast_records:
            for record in split_records(data):
                if record.epoch == 1:
                    self._openssl_next_write = max(
                        self._openssl_next_write or 0, record.sequence + 1
                    )
        await self.transport._send(data)

    async def _send_data(self, data: bytes) -> None:
        if self.records is None:
            await super()._send_data(data)
        else:
            self.send_data_now(data)

    async def stop(self) -> None:
        if self._deliver_now is not None:
            self._deliver_now = None
            self._path.set_fast_receiver(None)
        records = self.records
        if records is None:
            await super().stop()
            return
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._state in (State.CONNECTING, State.CONNECTED):
            # OpenSSL's close_notify would reuse a sequence number of the fast path.
            try:
                await self.transport._send(records.seal(CONTENT_ALERT, ALERT_CLOSE_NOTIFY))
            except (ConnectionError, SequenceExhausted):
                pass
