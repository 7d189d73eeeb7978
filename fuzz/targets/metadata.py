"""Metadata messages: :func:`avatar_mf.protocol.metadata.parse_message` on the bytes (a binary
view) and on their text (a text message's string, undecodable bytes as lone surrogates).

Documented outcome: a message or :class:`~avatar_mf.protocol.metadata.MetadataError` ("and
no other exception"). The error reply :func:`error_for` builds must serialise; a parsed
message written by :func:`dump_message` must parse back to an equal message.
"""

from __future__ import annotations

from avatar_mf.protocol.metadata import MetadataError, dump_message, error_for, parse_message


def fuzz_one(data: bytes) -> None:
    for wire in (data, data.decode("utf-8", "surrogateescape")):
        try:
            message = parse_message(wire)
        except MetadataError as err:
            dump_message(error_for(err))
            continue
        again = parse_message(dump_message(message))
        if again != message:
            raise AssertionError(f"dump/parse round trip changed {message!r} into {again!r}")
