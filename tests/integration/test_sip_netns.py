"""RFC 4475 messages whose top Via sent-by is a domain name, against a real MF process inside a
network namespace that has only a loopback interface (the messages name example.com hosts, so
they never run on the host's network).

RFC 3261 18.2.2 with RFC 3581 section 4: a response over UDP goes to the ``received`` address
the MF stamped (the packet's source) at the sent-by port (5060 when none is given), without
resolving the sent-by name. The probe listens on 127.0.0.1:5060 inside the namespace, sends each
message from there, and must get its response there; the MF listens on another port. A second
socket on another port sends the same messages and must get nothing (no ``rport``: the
response goes to the sent-by port, not to the source port).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

RFC4475 = Path(__file__).resolve().parents[1] / "sip" / "rfc4475"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)

PROBE = r"""
import json, socket, sys, time
from pathlib import Path
from avatar_mf.testing.process import MfProcess, free_port

workdir, data_dir, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")
port = free_port()
while port == 5060:
    port = free_port()
out = {"answers": {}, "elsewhere": {}, "elsewhere_at_5060": {}}


def collect(sock, wait):
    sock.settimeout(wait)
    got = []
    try:
        while True:
            reply = sock.recv(65535)
            got.append(int(reply.split(b" ", 2)[1]))
            if got[-1] >= 200:
                break
    except socket.timeout:
        pass
    return got


# MEDIA__AUDIO off: the RFC 2543 INVITE's audio-only offer must stay a 488 here (with audio on
# it is an audio call, and its 2xx would wait for an ACK that never comes).
settings = {"SIP__PORT": str(port), "SIP__T1": "0.05", "MEDIA__AUDIO": "false"}
with MfProcess.start(workdir, settings=settings) as mf:
    at_5060 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    at_5060.bind(("127.0.0.1", 5060))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    for name in names:
        data = (data_dir / f"{name}.dat").read_bytes()
        at_5060.sendto(data, ("127.0.0.1", mf.sip_port))
        out["answers"][name] = collect(at_5060, 2.0)
        # The same Via from another port, as another transaction (a new Call-ID and branch):
        # without rport the answer still goes to the sent-by port.
        data = data.replace(b"Call-ID: ", b"Call-ID: x", 1).replace(b"z9hG4bK", b"z9hG4bKx", 1)
        other.sendto(data, ("127.0.0.1", mf.sip_port))
        out["elsewhere"][name] = collect(other, 1.0)
        out["elsewhere_at_5060"][name] = collect(at_5060, 1.0)
    out["log_problems"] = [
        line for line in mf.log_text().splitlines()
        if '"level": "ERROR"' in line or "Traceback" in line
    ]
print(json.dumps(out))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"mfsip-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_domain_name_sent_by_is_answered_at_received_and_the_sent_by_port(
    netns: str, tmp_path: Path
) -> None:
    names = ["zeromf", "lwsdisp", "inv2543"]  # OPTIONS, OPTIONS, the RFC 2543 INVITE
    result = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", PROBE, str(tmp_path), str(RFC4475),
         ",".join(names)],
        capture_output=True,
        timeout=60,
        env=os.environ.copy(),
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout.decode().strip().splitlines()[-1])
    answers = out["answers"]
    assert answers["zeromf"] == [200]  # OPTIONS with Max-Forwards 0: answered by the UAS
    assert answers["lwsdisp"] == [200]
    # The RFC 2543 INVITE passes SIP (no "400 Missing Contact"); its audio-only offer has no
    # data channel for the MF (and audio is off in this node), so it is refused with 488.
    assert answers["inv2543"][-1] == 488, answers  # at once: no 100 Trying before it
    assert all(got == [] for got in out["elsewhere"].values()), out["elsewhere"]
    assert all(got for got in out["elsewhere_at_5060"].values()), out["elsewhere_at_5060"]
    assert out["log_problems"] == []
