"""The test UE offers partially reliable animation streams (RFC 8864 5.1.1, RFC 8831 6.1):
``with_partial_reliability`` and ``ue call --max-time/--max-retr``."""

from __future__ import annotations

import argparse

import pytest

from avatar_mf.media.sdp_params import stream_spec
from avatar_mf.sdp.datachannel import DcMap, format_dcmap, parse_dcmap
from avatar_mf.ue.cli import _streams, add_parser
from avatar_mf.ue.offer import DEFAULT_STREAMS, with_partial_reliability


def call_args(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="avatar-mf ue")
    add_parser(parser.add_subparsers(required=True))
    return parser.parse_args(["call", "sip:room@127.0.0.1", *options])


def test_only_the_animation_streams_become_partially_reliable() -> None:
    streams = with_partial_reliability(DEFAULT_STREAMS, max_time=150)
    by_id = {s.stream_id: s for s in streams}
    assert by_id[1002].max_time == 150 and by_id[1002].max_retr is None
    assert all(s.reliable for s in streams if s.stream_id != 1002)
    # Written in the offer as TS 26.264's example, read back the same (the MF echoes it).
    line = format_dcmap(by_id[1002])
    assert (
        line == '1002 label="avatar-anim-1";subprotocol="3gpp-ar-animation";ordered=1;max-time=150'
    )
    assert parse_dcmap(line) == by_id[1002]
    # And the channel the UE and the MF create from it carries the lifetime.
    assert stream_spec(by_id[1002]).max_time == 150


def test_max_retr_and_back_to_reliable() -> None:
    streams = with_partial_reliability(DEFAULT_STREAMS, max_retr=0)
    assert [s.max_retr for s in streams] == [None, None, None, 0]
    assert with_partial_reliability(streams) == DEFAULT_STREAMS
    with pytest.raises(ValueError, match="exclusive"):
        with_partial_reliability(DEFAULT_STREAMS, max_time=1, max_retr=1)


def test_cli_options() -> None:
    assert _streams(call_args()) == DEFAULT_STREAMS
    streams = _streams(call_args("--max-time", "150"))
    assert [s.max_time for s in streams] == [None, None, None, 150]
    custom = _streams(
        call_args("--stream", "0:http", "--stream", "1002:3gpp-ar-animation", "--max-retr", "2")
    )
    assert custom == (
        DcMap(0, subprotocol="http"),
        DcMap(1002, subprotocol="3gpp-ar-animation", max_retr=2),
    )


@pytest.mark.parametrize(
    "options",
    [("--max-time", "1", "--max-retr", "1"), ("--max-time", "65536"), ("--max-retr", "-1")],
)
def test_cli_rejects(options: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        call_args(*options)
