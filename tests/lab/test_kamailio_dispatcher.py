"""The MF behind a real Kamailio (Debian 12's 5.6): dispatching, routing, drain and failover.

Each test starts its own topology on free loopback ports (``lab`` fixture, see conftest.py):
two MF subprocesses, Kamailio in front of them running ``docker/kamailio/kamailio.cfg``
(dispatcher on a hash of the Request-URI user: each SIPp call dials its own room, room<n>;
OPTIONS probes every second, failover on 503/408/timeout, record-routing), and SIPp as the
UE, sending everything to the proxy.

What each test proves is in its docstring; the node each call landed on is read from the
nodes' own counters (``/stats``) and from the proxy's log line per dispatched request.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from avatar_mf.testing.kamailio import (
    KAMAILIO_CFG,
    dispatcher_list,
    parse_dispatcher_list,
)
from avatar_mf.testing.process import MfProcess

from .conftest import (
    DOCKER_DIR,
    HOST,
    LAB_DIR,
    Lab,
    Message,
    SippResult,
    assert_calls_ok,
    node_log_lines,
    options_status,
    wait_until,
)

CALL = DOCKER_DIR / "sipp" / "uac_call.xml"  # the compose UE's scenario
HOLD = LAB_DIR / "uac_hold_until_bye.xml"
CANCEL = LAB_DIR / "uac_cancel.xml"

LabFactory = Callable[..., Lab]


def _delta(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after, strict=True)]


def _answered(node: MfProcess) -> int:
    return int(node.stats()["calls"]["calls_answered"])


def _sip_counters(lab: Lab) -> list[dict[str, int]]:
    return [dict(node.stats()["sip"]) for node in lab.nodes]


def _dispatched(lab: Lab, method: str = "INVITE") -> dict[int, int]:
    """How many ``method`` requests the proxy's log says it sent to each node port."""
    counts = {port: 0 for port in lab.ports}
    for line in node_log_lines(lab, rf"<script>: {method} \S+ -> sip:"):
        port = int(line.rsplit(":", 1)[1])
        counts[port] = counts.get(port, 0) + 1
    return counts


def _assert_via_is_only_sipps(result: SippResult) -> None:
    """Every response SIPp received carries exactly one Via, SIPp's own: the proxy added its
    Via to each request it forwarded and took it off again from each response."""
    responses = [m for m in result.messages if not m.sent and m.first_line.startswith("SIP/")]
    assert responses, result.describe()
    for message in responses:
        vias = message.headers("Via")
        assert len(vias) == 1 and vias[0].startswith("SIP/2.0/"), message.text
        assert f" {HOST}:" in vias[0], message.text


def _mf_bye(result: SippResult) -> list[Message]:
    return result.received("BYE ")


# --------------------------------------------------------------------------- the config


def test_docker_config_is_the_shipped_config() -> None:
    """docker/kamailio/kamailio.cfg is avatar_mf.testing.kamailio.KAMAILIO_CFG, so compose,
    `make lab` and these tests run one config. To update it: python -m
    avatar_mf.testing.kamailio write-config docker/kamailio/kamailio.cfg"""
    assert (DOCKER_DIR / "kamailio" / "kamailio.cfg").read_text() == KAMAILIO_CFG


def test_config_passes_kamailio_check(lab_tools: dict[str, str], tmp_path: Path) -> None:
    """`kamailio -c` (Debian's 5.6) accepts the config with -A overrides of its defines, and
    listens where LISTEN_PORT says."""
    nodes = tmp_path / "dispatcher.list"
    nodes.write_text(dispatcher_list(["127.0.0.1:5080", "127.0.0.1:5081"]))
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(KAMAILIO_CFG)
    defines = [
        f'DISPATCHER_LIST="{nodes}"',
        f'CTL_SOCKET="unix:{tmp_path}/ctl"',
        "LISTEN_PORT=5999",
        "FR_TIMER=1000",
        "CHILDREN=1",
    ]
    argv = [lab_tools["kamailio"], "-c", "-f", str(cfg)]
    for define in defines:
        argv += ["-A", define]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "udp: 127.0.0.1 [127.0.0.1]:5999" in done.stdout + done.stderr


def test_dispatcher_list_and_state_parsing() -> None:
    assert dispatcher_list(["127.0.0.1:5080", "sip:127.0.0.1:5081;transport=tcp"]).splitlines()[
        1:
    ] == ["1 sip:127.0.0.1:5080 8 0", "1 sip:127.0.0.1:5081;transport=tcp 8 0"]
    listing = """{
        DEST: {
            URI: sip:127.0.0.1:5081
            FLAGS: IP
            PRIORITY: 0
        }
        DEST: {
            URI: sip:127.0.0.1:5080
            FLAGS: AP
            PRIORITY: 0
        }
    }"""
    assert parse_dispatcher_list(listing) == {
        "sip:127.0.0.1:5081": "IP",
        "sip:127.0.0.1:5080": "AP",
    }


# --------------------------------------------------------------------------- (a) dispatching


@pytest.mark.parametrize(("transport", "calls"), [("u1", 20), ("t1", 10)], ids=["udp", "tcp"])
def test_calls_spread_over_both_nodes(lab: LabFactory, transport: str, calls: int) -> None:
    """SIPp places calls through Kamailio (INVITE with a data channel offer, 200, ACK, BYE,
    200): every call succeeds, the proxy spread the rooms over both nodes, and each node
    answered exactly the INVITEs the proxy sent it.

    Record-Route: each 200 carries the proxy's Record-Route (the MF copies it, RFC 3261
    12.1.1), SIPp builds its route set from it, and each node received the ACK and the BYE of
    each of its calls (they crossed the proxy's loose_route to the MF Contact). Over TCP the
    proxy changes transport towards the nodes (UDP) and record-routes twice (r2).
    Via: every response SIPp got carries only its own Via, so the MF answered along the Via
    stack the proxy built and the proxy took its own off (the BYE's 200 included)."""
    the_lab = lab()
    before, sip_before = the_lab.answered(), _sip_counters(the_lab)
    result = the_lab.sipp(CALL, calls=calls, rate=20, limit=10, transport=transport)
    assert_calls_ok(result, calls)

    answered = _delta(before, the_lab.answered())
    assert sum(answered) == calls and all(n > 0 for n in answered), answered
    dispatched = _dispatched(the_lab)
    assert [dispatched[port] for port in the_lab.ports] == answered
    for node_before, node_after, n in zip(
        sip_before, _sip_counters(the_lab), answered, strict=True
    ):
        for counter in ("rx_request_INVITE", "rx_request_ACK", "rx_request_BYE"):
            assert node_after.get(counter, 0) - node_before.get(counter, 0) == n, (
                counter,
                node_after,
            )
    _assert_via_is_only_sipps(result)
    oks = [m for m in result.received("SIP/2.0 200") if m.headers("CSeq")[0].endswith("INVITE")]
    assert len(oks) == calls
    contacts = {ok.headers("Contact")[0] for ok in oks}
    assert contacts == {f"<sip:mf@{HOST}:{port};transport=udp>" for port in the_lab.ports}
    for ok in oks:
        routes = ok.headers("Record-Route")
        if transport == "u1":
            assert routes == [f"<sip:{the_lab.proxy.address};lr=on>"], ok.text
        else:  # one entry per side of the proxy, each with r2
            assert len(routes) == 2 and all(
                f"sip:{the_lab.proxy.address};" in rr and "r2=on" in rr for rr in routes
            ), ok.text


def test_mf_bye_follows_the_route_set(lab: LabFactory) -> None:
    """The MF's own BYE (media.setup_timeout: SIPp does no DTLS) goes through the proxy: the
    route set the MF took from the INVITE's Record-Route sends it to Kamailio, which consumes
    its Route entry, adds its Via on top of the MF's and forwards it to the UE's Contact."""
    the_lab = lab(settings={"MEDIA__SETUP_TIMEOUT": "1"})
    result = the_lab.sipp(HOLD, calls=2, rate=10, timeout=20)
    assert_calls_ok(result, 2)
    byes = _mf_bye(result)
    assert len(byes) == 2, result.describe()
    proxy_via = f"SIP/2.0/UDP {the_lab.proxy.address};branch="
    node_ports = set()
    for bye in byes:
        vias = bye.headers("Via")
        assert len(vias) == 2 and vias[0].startswith(proxy_via), bye.text
        node_ports.add(int(vias[1].split()[1].split(";")[0].rsplit(":", 1)[1]))
        assert not bye.headers("Route"), bye.text  # the proxy consumed its own entry
        assert bye.first_line.startswith(f"BYE sip:ue1@{HOST}:"), bye.first_line
        assert "setup timeout" in bye.headers("Reason")[0]
    assert node_ports == set(the_lab.ports)  # one call on each node, both BYEs via the proxy


def test_cancel_is_relayed_to_the_node_with_the_invite(lab: LabFactory) -> None:
    """CANCEL before the answer (the MF rings 2 s): the proxy answers the CANCEL 200 and relays
    it to the node that holds the INVITE (tm transaction matching), which answers 487; the
    487 reaches the UE and its ACK is absorbed hop-by-hop. Neither node answers a call."""
    the_lab = lab(settings={"SIP__ANSWER_DELAY": "2"})
    result = the_lab.sipp(CANCEL, calls=2, rate=10, timeout=15)
    assert_calls_ok(result, 2)
    assert the_lab.answered() == [0, 0]
    for node in the_lab.nodes:
        stats = node.stats()
        assert stats["calls"]["calls_started"] == 1, stats  # room1 and room2: one on each node
        assert stats["sip"].get("rx_request_CANCEL", 0) == 1, stats
    assert len(node_log_lines(the_lab, r"<script>: CANCEL ")) == 0  # CANCEL is not dispatched


# --------------------------------------------------------------------------- (b) drain


def test_drained_node_leaves_the_pool_and_comes_back(lab: LabFactory) -> None:
    """SIGTERM one node while it holds a call: it answers OPTIONS 503 with Retry-After at once,
    the proxy's probes mark it inactive within a couple of seconds, new calls all go to the
    other node (a call that races the probe gets the 503 and fails over), the held call
    continues until the drain timeout, then the MF ends it with BYE through the proxy and
    exits 0. A new MF on the same port is marked active again by the probes and gets calls."""
    drain_timeout = 7.0
    the_lab = lab(
        settings={
            "LIFECYCLE__DRAIN_TIMEOUT": f"{drain_timeout:g}",
            # The held call must outlive the drain, not fail on the (never coming) DTLS first.
            "MEDIA__SETUP_TIMEOUT": "30",
        }
    )
    held = the_lab.start_sipp(HOLD, calls=1, timeout=40)
    wait_until(
        lambda: any(node.stats()["held"]["dialogs"] for node in the_lab.nodes),
        10,
        "the held call to be answered",
    )
    draining = next(i for i, n in enumerate(the_lab.nodes) if n.stats()["held"]["dialogs"])
    other = 1 - draining
    node = the_lab.nodes[draining]
    before = the_lab.answered()

    node.proc.send_signal(signal.SIGTERM)
    sigterm_at = time.monotonic()
    wait_until(
        lambda: (options_status(the_lab.ports[draining]) or (0, ""))[0] == 503,
        5,
        "the draining node to answer OPTIONS 503",
    )
    status = options_status(the_lab.ports[draining])
    assert status is not None and "\nRetry-After:" in status[1], status
    waited = the_lab.proxy.wait_for_state(the_lab.uri(draining), "I", timeout=5)
    assert the_lab.proxy.dispatcher_states()[the_lab.uri(other)].startswith("A")

    result = the_lab.sipp(CALL, calls=10, rate=20)
    assert_calls_ok(result, 10)
    assert _delta(before, the_lab.answered()) == (
        [0, 10] if draining == 0 else [10, 0]
    ), "calls reached the draining node"
    assert time.monotonic() - sigterm_at < drain_timeout, "the checks outlasted the drain"

    held_result = held.wait()
    assert_calls_ok(held_result, 1)
    (bye,) = _mf_bye(held_result)
    assert bye.headers("Via")[0].startswith(f"SIP/2.0/UDP {the_lab.proxy.address};")
    assert node.proc.wait(15) == 0
    drained_for = time.monotonic() - sigterm_at
    assert drained_for >= drain_timeout - 0.5, drained_for
    print(f"inactive {waited:.1f} s after the 503 began; drain ended after {drained_for:.1f} s")

    # Rolling restart: the same port, a fresh process, back in the pool after one 200.
    the_lab.restart_node(draining)
    the_lab.proxy.wait_for_state(the_lab.uri(draining), "A", timeout=5)
    before = the_lab.answered()
    result = the_lab.sipp(CALL, calls=10, rate=20)
    assert_calls_ok(result, 10)
    assert all(n > 0 for n in _delta(before, the_lab.answered()))


# --------------------------------------------------------------------------- (c) failover


def test_killed_node_fails_over_then_leaves_the_pool(lab: LabFactory) -> None:
    """SIGKILL one node (no 503, no BYE: it is just gone). Calls placed at once still all
    succeed on the survivor: each INVITE the proxy sends to the dead node times out after
    fr_timer (1 s here) and the failure_route retries it on the next node. Then the probes
    (no answer to OPTIONS) mark it inactive, and later calls go straight to the survivor with
    no failover at all."""
    the_lab = lab(fr_timer_ms=1000)
    dead, survivor = 1, 0
    states = the_lab.proxy.dispatcher_states()
    assert all(states[the_lab.uri(i)].startswith("A") for i in (0, 1)), states
    survivor_node = the_lab.nodes[survivor]
    before = _answered(survivor_node)
    the_lab.nodes[dead].proc.kill()
    the_lab.nodes[dead].proc.wait(5)
    killed_at = time.monotonic()

    result = the_lab.sipp(CALL, calls=10, rate=20)
    assert_calls_ok(result, 10)
    assert _answered(survivor_node) - before == 10
    survivor_uri = the_lab.uri(survivor)
    failovers = node_log_lines(the_lab, rf"retrying on {survivor_uri}$")
    # The dead node stays active for at least fr_timer after the kill (a probe needs that long
    # to time out), and the room hash sends it some of the first calls, well within that.
    assert failovers, the_lab.proxy.log_text()[-3000:]

    the_lab.proxy.wait_for_state(the_lab.uri(dead), "I", timeout=5)
    inactive_after = time.monotonic() - killed_at
    before = _answered(survivor_node)
    result = the_lab.sipp(CALL, calls=10, rate=20)
    assert_calls_ok(result, 10)
    assert _answered(survivor_node) - before == 10
    assert len(node_log_lines(the_lab, r"retrying on ")) == len(failovers)
    print(f"{len(failovers)} calls failed over; dead node inactive after {inactive_after:.1f} s")
