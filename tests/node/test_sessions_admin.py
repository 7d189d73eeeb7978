"""``GET /sessions`` and ``DELETE /sessions/{call_id}`` on the admin listener, and the
``avatar-mf sessions`` command that drives them.

The token rules are checked on an :class:`AdminServer` in this process; the rest against a
real MF subprocess with SIPp (which waits for the MF's BYE), the product's test UE (real data
channels, a room) and hand-written SIP (an INVITE still ringing).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from avatar_mf.cli import main as cli_main
from avatar_mf.node.admin import TOKEN_NOT_SET, AdminServer
from avatar_mf.testing.process import MfProcess
from tests.integration.conftest import sipp_run
from tests.node.test_metrics import (
    OFFER,
    STEP,
    RawUac,
    first_line,
    idle,
    log_problems,
    wait_for,
)

HOST = "127.0.0.1"
TOKEN = "s3ssions-admin-test-token"
ANSWER_DELAY = 1.0
"""The node rings this long before answering: long enough to see (and drop) a pending call."""

NODE_SETTINGS: Mapping[str, str] = {
    "SIP__T1": "0.025",
    "SIP__T4": "0.5",
    "SIP__ANSWER_DELAY": str(ANSWER_DELAY),
    "MEDIA__SETUP_TIMEOUT": "20",
    "ADMIN__TOKEN": TOKEN,
}


# --------------------------------------------------------------------------- token rules


@pytest.fixture
async def admin() -> AsyncIterator[tuple[str, list[str]]]:
    """An admin listener with the token set, a fixed session list and a recording drop."""
    dropped: list[str] = []

    def drop(call_id: str) -> int:
        dropped.append(call_id)
        return 0 if call_id == "unknown" else 1

    server = AdminServer(
        snapshot=dict,
        ready=lambda: True,
        sessions=lambda: [{"call_id": "a@ue", "state": "established"}],
        drop=drop,
        token=TOKEN,
    )
    await server.start(HOST, 0)
    yield f"http://{HOST}:{server.port}", dropped
    await server.close()


async def request(
    method: str, url: str, authorization: str | None = None
) -> tuple[int, Any, Mapping[str, str]]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token-value", f"Basic {TOKEN}", f"Bearer {TOKEN}x"],
)
async def test_a_missing_or_wrong_token_gets_401(
    admin: tuple[str, list[str]], authorization: str | None
) -> None:
    base, dropped = admin
    for method, path in (("GET", "/sessions"), ("DELETE", "/sessions/a@ue")):
        status, body, headers = await request(method, base + path, authorization)
        assert status == 401
        assert "Bearer" in body["error"]
        assert headers["WWW-Authenticate"].startswith("Bearer ")
    assert dropped == []


async def test_the_right_token_lists_and_drops(admin: tuple[str, list[str]]) -> None:
    base, dropped = admin
    bearer = f"Bearer {TOKEN}"
    status, body, _ = await request("GET", base + "/sessions", bearer)
    listed = [{"call_id": "a@ue", "state": "established"}]
    assert (status, body) == (200, {"count": 1, "sessions": listed})
    # A Call-ID may hold "/" and "@" (RFC 3261 25.1): percent-encoded in the path.
    call_id = "x/y@[::1]"
    url = f"{base}/sessions/{urllib.parse.quote(call_id, safe='')}"
    status, body, _ = await request("DELETE", url, f"bearer {TOKEN}")
    assert (status, body) == (200, {"call_id": call_id, "ended": 1})
    status, body, _ = await request("DELETE", base + "/sessions/unknown", bearer)
    assert status == 404 and "unknown" in body["error"]
    assert dropped == [call_id, "unknown"]


async def test_without_a_configured_token_sessions_are_disabled() -> None:
    server = AdminServer(
        snapshot=dict, ready=lambda: True, sessions=list, drop=lambda _: 1, token=None
    )
    await server.start(HOST, 0)
    try:
        base = f"http://{HOST}:{server.port}"
        for method, path in (("GET", "/sessions"), ("DELETE", "/sessions/a@ue")):
            for authorization in (None, "Bearer anything-at-all"):
                status, body, _ = await request(method, base + path, authorization)
                assert (status, body) == (403, {"error": TOKEN_NOT_SET})
        assert "admin.token" in TOKEN_NOT_SET and "AVATAR_MF_ADMIN__TOKEN" in TOKEN_NOT_SET
    finally:
        await server.close()


# --------------------------------------------------------------------------- a real node


@pytest.fixture(scope="module")
def mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    node = MfProcess.start(tmp_path_factory.mktemp("mf"), settings=NODE_SETTINGS)
    try:
        yield node
    finally:
        code = node.stop()
    assert code == 0, node.log_text()[-3000:]
    assert not log_problems(node), "\n".join(log_problems(node))


def sessions(mf: MfProcess, token: str = TOKEN) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"http://{HOST}:{mf.admin_port}/sessions", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=STEP) as response:
        body = json.load(response)
    assert body["count"] == len(body["sessions"])
    listed: list[dict[str, Any]] = body["sessions"]
    return listed


def wait_sessions(
    mf: MfProcess, check: Callable[[list[dict[str, Any]]], bool], timeout: float = STEP
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        listed = sessions(mf)
        if check(listed):
            return listed
        if time.monotonic() > deadline:
            pytest.fail(f"/sessions never got there: {listed}")
        time.sleep(0.05)


def cli(*args: str, environ: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(["sessions", *args], stdout=out, stderr=err, environ=environ or {})
    return code, out.getvalue(), err.getvalue()


def admin_url(mf: MfProcess) -> Sequence[str]:
    return ("--admin", f"{HOST}:{mf.admin_port}")


def test_sipp_call_is_listed_and_dropped_with_bye(mf: MfProcess, tmp_path: Path) -> None:
    before = wait_for(mf, idle)
    with ThreadPoolExecutor(1) as pool:
        # INVITE, 200, ACK, then wait (up to 10 s) for the MF's BYE and answer it.
        sipp = pool.submit(sipp_run, tmp_path / "sipp", "mf_bye.xml", mf, trace_messages=True)
        [call] = wait_sessions(mf, lambda s: len(s) == 1 and s[0]["state"] == "established")
        assert call["transport"] == "udp"
        assert call["source"].startswith(f"{HOST}:")
        assert call["from"].startswith("sip:ue1@") and call["identity"] == call["from"]
        assert call["to"].startswith("sip:avatar@")
        assert call["age_seconds"] >= 0 and call["confirmed"] is True
        assert call["data_channels"] == []  # SIPp runs no DTLS: no channel opens
        assert (call["room"], call["participant_id"]) == (None, None)
        call_id = call["call_id"]

        # The command line shows it, with the token from the environment ...
        env = {"AVATAR_MF_ADMIN__TOKEN": TOKEN}
        code, out, err = cli(*admin_url(mf), environ=env)
        assert (code, err) == (0, "")
        header, row, total = out.splitlines()
        assert header.split()[:3] == ["CALL-ID", "STATE", "FROM"]
        assert row.split()[:2] == [call_id, "established"] and total == "1 call"
        code, out, _ = cli(*admin_url(mf), "--json", "--token", TOKEN)
        assert code == 0 and json.loads(out)["sessions"][0]["call_id"] == call_id
        # ... refuses without it, or with a wrong one ...
        code, out, err = cli(*admin_url(mf))
        assert (code, out) == (1, "") and "401" in err
        code, out, err = cli(*admin_url(mf), "--token", "not-the-token")
        assert (code, out) == (1, "") and "401" in err
        code, _, err = cli("drop", "no-such-call", *admin_url(mf), environ=env)
        assert code == 1 and "404" in err
        # ... and ends it: the UE gets the MF's BYE.
        code, out, err = cli("drop", call_id, *admin_url(mf), environ=env)
        assert (code, err) == (0, "") and call_id in out
        result = sipp.result(timeout=30)
    assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.describe()
    [bye] = [m for m in result.messages if not m.sent and m.first_line.startswith("BYE ")]
    assert bye.header("Call-ID") == call_id
    assert bye.header("Reason") == 'SIP;text="dropped by operator"'
    assert wait_sessions(mf, lambda s: not s) == []
    after = wait_for(mf, idle)
    ended = "avatar_mf_calls_ended_total"
    assert after.value(ended, reason="operator") - before.value(ended, reason="operator") == 1


def test_a_ringing_call_is_listed_pending_and_dropped_with_503(mf: MfProcess) -> None:
    wait_for(mf, idle)
    uac = RawUac(mf)
    try:
        call_id = uac.invite(OFFER)
        assert first_line(uac.receive()).startswith("SIP/2.0 100")
        [call] = wait_sessions(mf, lambda s: len(s) == 1)
        assert (call["call_id"], call["state"], call["confirmed"]) == (call_id, "pending", False)
        code, out, _ = cli("drop", call_id, *admin_url(mf), "--token", TOKEN, "--json")
        assert code == 0 and json.loads(out) == {"call_id": call_id, "ended": 1}
        response = uac.receive()
        assert first_line(response) == "SIP/2.0 503 Service Unavailable"
    finally:
        uac.close()
    assert wait_sessions(mf, lambda s: not s) == []
    # Nobody ACKs that 503: its transaction gives up after Timer H (64*T1) and all is released.
    wait_for(mf, idle)


async def test_ue_call_shows_its_channels_room_and_traffic(mf: MfProcess) -> None:
    from avatar_mf.ue import UeCall

    await asyncio.to_thread(wait_for, mf, idle)
    call = UeCall.dial(f"sip:lobby@{HOST}:{mf.sip_port}", HOST, mf.sip_port, ice=False)
    async with call:
        await call.wait_channels_open(STEP)
        call.send(1000, "not json")
        await call.receive(1000, STEP)  # the metadata service's error report
        listed = await asyncio.to_thread(
            wait_sessions, mf, lambda s: len(s) == 1 and len(s[0]["data_channels"]) == 4
        )
        [entry] = listed
        assert entry["call_id"] == call.call_id and entry["state"] == "established"
        assert entry["room"] == "lobby" and entry["participant_id"].startswith("p")
        channels = {c["stream_id"]: c["subprotocol"] for c in entry["data_channels"]}
        assert channels == {
            0: "http",
            10: "http",
            1000: "3gpp-ar-metadata",
            1002: "3gpp-ar-animation",
        }
        assert entry["messages_in"] == 1 and entry["messages_out"] >= 1
        assert entry["bytes_in"] == len("not json")
        code, out, _ = await asyncio.to_thread(cli, *admin_url(mf), "--token", TOKEN)
        assert code == 0
        row = out.splitlines()[1]
        assert "lobby/p" in row and "http,http,3gpp-ar-metadata,3gpp-ar-animation" in row
    assert await asyncio.to_thread(wait_sessions, mf, lambda s: not s) == []


def test_sessions_cli_takes_the_admin_address_and_token_from_the_config(
    mf: MfProcess, tmp_path: Path
) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'[admin]\nport = {mf.admin_port}\ntoken = "{TOKEN}"\n')
    code, out, err = cli("--config", str(config))
    assert (code, err) == (0, "") and out.endswith("0 calls\n")
    env = {"AVATAR_MF_ADMIN__PORT": str(mf.admin_port), "AVATAR_MF_ADMIN__TOKEN": TOKEN}
    code, out, err = cli(environ=env)
    assert (code, err) == (0, "") and out.endswith("0 calls\n")
    code, _, err = cli("drop")
    assert code == 2 and "CALL_ID" in err
