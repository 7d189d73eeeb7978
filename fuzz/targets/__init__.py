"""The fuzz targets: one module per parser, each with ``fuzz_one(data: bytes) -> None``.

A target passes an input when the parser returns or raises the error type its docstring
documents; any other exception escapes ``fuzz_one`` and is a crash. Targets import only the
parser they exercise, so the engine instruments (and pays for) that parser alone.
"""

from __future__ import annotations

#: Target name -> the parser it exercises (docs/fuzzing.md lists the same).
TARGETS: dict[str, str] = {
    "sip": "sip/parser.py parse_message, StreamFramer; sip/validate.py validate_request",
    "sdp": "sdp/model.py parse_sdp; sdp/offer_answer.py plan_answer, render_answer",
    "dcmap": "sdp/datachannel.py parse_dcmap, parse_dcsa, parse_fingerprint",
    "http": "http/parser.py RequestParser (HTTP over the bootstrap data channel); parse_path",
    "metadata": "protocol/metadata.py parse_message, error_for",
    "arf_units": "arf/units.py decode_unit, iter_units, UnitStreamDecoder",
    "transfer": "protocol/transfer.py parse_chunk, TransferReceiver",
    "arf_container": "avatar/validate.py validate_container (ARF container, avatar/container.py)",
    "glb": "avatar/validate.py validate_container (glTF binary, avatar/glb.py)",
}


def split_messages(data: bytes, max_parts: int = 8) -> list[bytes]:
    """Cut ``data`` into up to ``max_parts`` consecutive pieces, the cuts chosen by its first
    bytes: byte 0 gives the number of cuts, the next ones their positions. The same input
    always gives the same pieces (a crash replays)."""
    if not data:
        return [b""]
    cuts = data[0] % max_parts
    header, body = data[1 : 1 + cuts], data[1 + cuts :]
    if not body:
        return [b""]
    positions = sorted({(b * len(body)) // 256 for b in header} - {0})
    pieces, start = [], 0
    for pos in positions:
        pieces.append(body[start:pos])
        start = pos
    pieces.append(body[start:])
    return pieces
