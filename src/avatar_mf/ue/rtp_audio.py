"""The test UE's IMS-style audio: an ``m=audio ... RTP/AVP`` line, RTP from a WAV, a recorder.

:class:`UeAudio` binds one UDP socket (RTP and, muxed, RTCP: ``a=rtcp-mux`` is offered unless
``rtcp_mux=False``), writes the offer's audio m-line for its codecs (default AMR-WB then
PCMU, as a VoLTE UE lists them; only those the codec registry can serve are offered), and
once the answer names the codec:

* sends its PCM (16 kHz mono; a WAV file of any rate is resampled) as 20 ms RTP packets paced
  by the event loop clock, then silence until it stops (``keep_sending=False``: it goes quiet
  after the file, which is how a test makes the MF's RTP timeout fire);
* records every packet it receives: :meth:`UeAudio.received_pcm` is the decoded audio in
  sequence order with losses filled with silence, :attr:`UeAudio.arrivals` the arrival time
  of each received frame (for onset measurements), :meth:`UeAudio.save_wav` writes it.

``webrtc=True`` makes it a browser-style UE's audio instead: an ``m=audio ...
UDP/TLS/RTP/SAVPF`` line (default Opus, RFC 7587) that the offer BUNDLEs with the data
channel (:func:`avatar_mf.ue.offer.build_offer`), no socket of its own: its packets go as SRTP
over the data channel's ICE + DTLS transport (:class:`~avatar_mf.media.srtp_path.SrtpPath`,
attached by the call), and sending starts once the DTLS handshake gave SRTP keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar_mf.codecs.base import FRAME_BYTES, PCM_RATE, AudioDecoder, AudioEncoder
from avatar_mf.codecs.registry import audio_codec
from avatar_mf.media.srtp_path import SrtpPath
from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.packet import RtpPacket, is_rtcp, parse_rtp
from avatar_mf.rtp.rtcp import SenderReport, parse_rtcp
from avatar_mf.sdp.audio import (
    AudioPlan,
    OfferedFormat,
    offered_formats,
    plan_audio,
    render_audio_line,
)
from avatar_mf.sdp.model import Attribute, MediaDescription, SessionDescription
from avatar_mf.ue.av_sync import SrMapping
from avatar_mf.ue.media_lines import OfferedPayload, offer_line

#: The payload types the UE offers, by codec (AMR-WB octet-aligned, as many UEs do).
_FORMATS: dict[str, tuple[int, str, str]] = {
    "AMR-WB": (97, "AMR-WB/16000/1", "octet-align=1;mode-change-capability=2;max-red=0"),
    "AMR": (96, "AMR/8000/1", "octet-align=1"),
    "PCMU": (0, "PCMU/8000", ""),
    "PCMA": (8, "PCMA/8000", ""),
    "OPUS": (111, "opus/48000/2", "minptime=10;useinbandfec=1"),
}
_EVENT_PT = 101
_CLOCK = {"AMR-WB": 16000, "AMR": 8000, "PCMU": 8000, "PCMA": 8000, "OPUS": 48000}
#: The profile of a WebRTC audio m-line (RFC 5764 section 8, RFC 5124).
WEBRTC_PROTO = "UDP/TLS/RTP/SAVPF"
#: The mid of the test UE's WebRTC audio m-line.
WEBRTC_AUDIO_MID = "audio"


def read_wav(path: Path) -> bytes:
    """A WAV file (16-bit PCM, any rate, mono or the first channel) as 16 kHz mono PCM."""
    with wave.open(str(path), "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        data = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples; only 16-bit PCM WAV is read")
    samples = np.frombuffer(data, dtype="<i2")[::channels]
    return resample(samples.tobytes(), rate)


def resample(pcm: bytes, rate: int, to: int = PCM_RATE) -> bytes:
    """16-bit mono PCM from ``rate`` to ``to`` Hz (linear interpolation: test signals only)."""
    if rate == to:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    count = int(len(samples) * to / rate)
    positions = np.arange(count) * rate / to
    out = np.interp(positions, np.arange(len(samples)), samples)
    return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()


def write_wav(path: Path, pcm: bytes, rate: int = PCM_RATE) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._on = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._on(data, (str(addr[0]), int(addr[1])))


async def bind_udp(
    local_host: str, on_datagram: Callable[[bytes, tuple[str, int]], None]
) -> tuple[asyncio.DatagramTransport, int]:
    """A UDP socket on ``local_host`` (any free port) handing each datagram and its source to
    ``on_datagram``; the transport and its port (the test UE's RTP sockets)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(on_datagram), local_addr=(local_host, 0)
    )
    return transport, int(transport.get_extra_info("sockname")[1])


@dataclass
class _Negotiated:
    payload_type: int
    name: str
    clock_rate: int
    encoder: AudioEncoder
    decoder: AudioDecoder
    remote: tuple[str, int]


class UeAudio:
    """See the module docstring."""

    def __init__(
        self,
        local_host: str = "127.0.0.1",
        *,
        codecs: Sequence[str] | None = None,
        pcm: bytes = b"",
        keep_sending: bool = True,
        rtcp_mux: bool = True,
        send_delay: float = 0.0,
        now: Callable[[], float] = time.monotonic,
        webrtc: bool = False,
    ) -> None:
        self.local_host = local_host
        self.webrtc = webrtc
        if codecs is None:
            codecs = ("opus", "PCMU") if webrtc else ("AMR-WB", "PCMU")
        self.codecs = [
            c.upper()
            for c in codecs
            if c.upper() in _FORMATS
            and audio_codec(c.upper(), _CLOCK[c.upper()], dict(_fmtp(_FORMATS[c.upper()][2])))
            is not None
        ]
        if not self.codecs:
            raise ValueError(f"none of the codecs {list(codecs)} can be served here")
        self.pcm = pcm
        self.keep_sending = keep_sending
        self.rtcp_mux = rtcp_mux
        self.send_delay = send_delay
        self._now = now
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        #: WebRTC style: SRTP on the data channel's transport (None for IMS style).
        self.srtp: SrtpPath | None = None
        self._closed = False
        self._keys = asyncio.Event()
        self._negotiated: _Negotiated | None = None
        self._sender: asyncio.Task[None] | None = None
        self.ssrc = random.getrandbits(32)
        #: Received frames by extended sequence: (arrival time, rtp timestamp, PCM 20 ms).
        self._frames: dict[int, tuple[float, int, bytes]] = {}
        self._highest: int | None = None
        self.packets_in = 0
        self.packets_out = 0
        #: The MF's RTCP SRs (latest last).
        self.sender_reports: list[SrMapping] = []
        self.rtcp_in = 0
        self.bad_in = 0
        #: When the first packet of the PCM left (the sender's clock).
        self.first_sent: float | None = None
        self.sent_frames = 0

    @property
    def codec(self) -> str | None:
        return self._negotiated.name if self._negotiated is not None else None

    async def open(self) -> int:
        if self.webrtc:
            if self.srtp is None:
                self.srtp = SrtpPath()
                self.srtp.on_rtp = self._received
                self.srtp.on_rtcp = self._received
                self.srtp.on_ready = self._keys.set
            return self.port
        self._transport, self.port = await bind_udp(self.local_host, self._received)
        return self.port

    def media(self) -> MediaDescription:
        """The offer's audio m-line."""
        payloads = [OfferedPayload(*_FORMATS[name]) for name in self.codecs]
        event_rate = 48000 if self.webrtc and "OPUS" in self.codecs else 16000
        payloads.append(OfferedPayload(_EVENT_PT, f"telephone-event/{event_rate}"))
        attrs = [Attribute("ptime", "20")]
        if self.rtcp_mux or self.webrtc:
            attrs.append(Attribute("rtcp-mux"))
        attrs.append(Attribute("sendrecv"))
        return offer_line(
            "audio",
            payloads,
            attrs,
            port=self.port,
            host=self.local_host,
            proto=WEBRTC_PROTO if self.webrtc else "RTP/AVP",
            mid=WEBRTC_AUDIO_MID if self.webrtc else None,
        )

    def start(self, answer: MediaDescription, address: str) -> None:
        """The answer's audio m-line (and its address): start sending and receiving."""
        if answer.port == 0:
            return
        formats = [f for f in offered_formats(answer) if f.name.lower() != "telephone-event"]
        if not formats:
            raise ValueError("the answer's audio m-line names no codec")
        conn = answer.connection
        if self.webrtc:
            self._begin(formats[0], ("bundle", 0))  # the data channel's transport
            return
        self._begin(formats[0], (conn.address if conn is not None else address, answer.port))

    def answer(self, offer: SessionDescription, index: int) -> MediaDescription:
        """Answer the offer's audio m-line ``index`` (RFC 3264 6.1: the first of the offered
        codecs this UE has, in the offer's order) and start; port 0 when none fits."""
        offered = offer.media[index]
        outcome = plan_audio(offer, index, _OfferOrder(offered, self.codecs))
        if not isinstance(outcome, AudioPlan):
            return MediaDescription("audio", 0, offered.proto, offered.formats[:1])
        line = render_audio_line(outcome, port=self.port, address=self.local_host)
        self._begin(outcome.codec, (outcome.remote_address, outcome.remote_port))
        return line

    def _begin(self, chosen: OfferedFormat, remote: tuple[str, int]) -> None:
        codec = audio_codec(chosen.name, chosen.clock_rate, chosen.params)
        if codec is None:
            raise ValueError(f"{chosen.name} was chosen, which this UE cannot serve")
        self._negotiated = _Negotiated(
            chosen.payload_type,
            chosen.name.upper(),
            chosen.clock_rate,
            codec.encoder(),
            codec.decoder(),
            remote,
        )
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    def send_raw(self, data: bytes) -> None:
        """Send any datagram to the MF's RTP address (for bad-input tests); WebRTC style: on
        the BUNDLE transport as it is, not protected."""
        if self.srtp is not None:
            self.srtp.send_unprotected(data)
        elif self._transport is not None and self._negotiated is not None:
            self._transport.sendto(data, self._negotiated.remote)

    def _sendto(self, data: bytes, remote: tuple[str, int]) -> None:
        if self.srtp is not None:
            self.srtp.send_rtp(data, remote)
        elif self._transport is not None:
            self._transport.sendto(data, remote)

    @property
    def _open(self) -> bool:
        if self.webrtc:
            return not self._closed
        return self._transport is not None and not self._transport.is_closing()

    @property
    def remote(self) -> tuple[str, int] | None:
        return self._negotiated.remote if self._negotiated is not None else None

    async def _send_loop(self) -> None:
        neg = self._negotiated
        assert neg is not None and self._open
        loop = asyncio.get_running_loop()
        if self.srtp is not None:
            await self._keys.wait()  # SRTP keys come with the DTLS handshake
        if self.send_delay > 0:
            await asyncio.sleep(self.send_delay)
        spf = neg.clock_rate // 50
        seq = random.getrandbits(16)
        ts = random.getrandbits(32)
        pcm = self.pcm
        if len(pcm) % FRAME_BYTES:
            pcm += bytes(FRAME_BYTES - len(pcm) % FRAME_BYTES)
        total = len(pcm) // FRAME_BYTES
        start = loop.time()
        index = 0
        while self._open:
            if index < total:
                frame = pcm[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]
            elif self.keep_sending:
                frame = bytes(FRAME_BYTES)
            else:
                return
            packet = RtpPacket(
                payload_type=neg.payload_type,
                sequence=seq,
                timestamp=ts,
                ssrc=self.ssrc,
                payload=neg.encoder.encode(frame),
                marker=index == 0,
            )
            self._sendto(packet.serialize(), neg.remote)
            if index == 0 and total:
                self.first_sent = self._now()
            self.packets_out += 1
            self.sent_frames = min(index + 1, total)
            seq = (seq + 1) & 0xFFFF
            ts = (ts + spf) & 0xFFFFFFFF
            index += 1
            delay = start + index * 0.020 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    def _received(self, data: bytes, source: tuple[str, int]) -> None:
        neg = self._negotiated
        if neg is None:
            return
        if is_rtcp(data):
            self.rtcp_in += 1
            self._rtcp(data, neg.clock_rate)
            return
        try:
            packet = parse_rtp(data)
        except RtpError:
            self.bad_in += 1
            return
        if packet.payload_type != neg.payload_type:
            return
        try:
            pcm = neg.decoder.decode(packet.payload)
        except ValueError:
            self.bad_in += 1
            return
        self.packets_in += 1
        ext = self._extend(packet.sequence)
        self._frames.setdefault(ext, (self._now(), packet.timestamp, pcm))

    def _rtcp(self, data: bytes, clock_rate: int) -> None:
        """Keep the MF's SRs (RTP time -> its wall clock: lip-sync against its video)."""
        try:
            packets = parse_rtcp(data, reduced_size=True)
        except RtpError:
            return
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.sender_reports.append(
                    SrMapping.of(packet.ntp_timestamp, packet.rtp_timestamp, clock_rate)
                )

    def timed_frames(self) -> list[tuple[int, bytes]]:
        """(RTP timestamp, 16 kHz PCM) of every received frame, in sequence order."""
        return [(self._frames[i][1], self._frames[i][2]) for i in sorted(self._frames)]

    def _extend(self, seq: int) -> int:
        if self._highest is None:
            self._highest = seq
            return seq
        candidate = (self._highest & ~0xFFFF) | seq
        if candidate - self._highest > 0x8000:
            candidate -= 0x10000
        elif self._highest - candidate > 0x8000:
            candidate += 0x10000
        self._highest = max(self._highest, candidate)
        return candidate

    def received_pcm(self) -> bytes:
        """Everything received, in sequence order, losses as silence (16 kHz PCM)."""
        if not self._frames:
            return b""
        first, last = min(self._frames), max(self._frames)
        return b"".join(
            self._frames[i][2] if i in self._frames else bytes(FRAME_BYTES)
            for i in range(first, last + 1)
        )

    @property
    def arrivals(self) -> list[tuple[float, bytes]]:
        """(arrival time, PCM) of every received frame, in sequence order."""
        return [(self._frames[i][0], self._frames[i][2]) for i in sorted(self._frames)]

    def save_wav(self, path: Path) -> None:
        write_wav(path, self.received_pcm())

    async def close(self) -> None:
        self._closed = True
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self.srtp is not None:
            self.srtp.close()


class _OfferOrder:
    """The UE's codec capabilities, preferring the offer's order (the answerer's usual)."""

    def __init__(self, offered: MediaDescription, codecs: Sequence[str]) -> None:
        self._order = [
            (f.name, f.clock_rate) for f in offered_formats(offered) if f.name.upper() in codecs
        ]

    def preference(self) -> Sequence[tuple[str, int]]:
        return self._order

    def answer_fmtp(
        self, name: str, clock_rate: int, fmtp: Mapping[str, str]
    ) -> Mapping[str, str] | None:
        codec = audio_codec(name, clock_rate, fmtp)
        return None if codec is None else codec.answer_fmtp(fmtp)


def _fmtp(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            out.append((key.strip().lower(), value.strip()))
    return out
