"""Run Debian's Kamailio as a SIP proxy in front of MF nodes, on loopback, for tests and labs.

::

    a, b = MfProcess.start(tmp_path / "a"), MfProcess.start(tmp_path / "b")
    nodes = [f"127.0.0.1:{a.sip_port}", f"127.0.0.1:{b.sip_port}"]
    with KamailioProxy.start(tmp_path / "proxy", nodes) as proxy:
        sipp(..., proxy.address)             # calls to sip:room1 all go to a (or all to b)
        a.proc.send_signal(signal.SIGTERM)   # a drains: it answers OPTIONS 503
        proxy.wait_for_state(nodes[0], "I")  # the probes mark it inactive

The proxy is Kamailio 5.6 (Debian 12's ``kamailio`` package, base modules only: tm, tmx, sl,
rr, pv, maxfwd, textops, siputils, sanity, xlog, ctl, dispatcher, usrloc, registrar) running
:data:`KAMAILIO_CFG`: a registrar (UEs REGISTER), record-routing, a dispatcher set of MF nodes
chosen by a hash of the Request-URI user (all calls of one room reach one node) and probed with
OPTIONS every second (a 503 from a draining node or no answer marks it inactive), failover to
the next node on 503, 408 or timeout, and the MF's own outgoing calls (the second leg of a
two-leg call) delivered to the Contact the called user registered. The same file is
``docker/kamailio/kamailio.cfg`` (``python -m avatar_mf.testing.kamailio write-config PATH``
writes it; a test keeps the two equal); its parameters are pre-processor defines passed with
``-A``.

:meth:`KamailioProxy.start` writes the config and a ``dispatcher.list`` into a work directory
and runs ``kamailio -DD -E`` (foreground, log to stderr, captured in ``kamailio.log``) with its
run directory, pid file and control socket inside that directory: nothing under ``/run`` or
``/etc`` is touched, so it runs as root in CI or as any user. It returns once the proxy answers
an OPTIONS over UDP. ``kamcmd`` (same package) reads the dispatcher state through the control
socket.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = [
    "KAMAILIO_CFG",
    "KamailioError",
    "KamailioProxy",
    "dispatcher_list",
    "find_kamailio",
    "find_kamcmd",
    "main",
    "parse_dispatcher_list",
    "sip_options_ping",
]

#: Where Debian puts kamailio and kamcmd; not always on a non-root user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

#: The dispatcher set holding the MF nodes (``MF_SET`` in the config).
MF_SET = 1

#: The proxy configuration (Kamailio 5.6), identical to ``docker/kamailio/kamailio.cfg``.
KAMAILIO_CFG = r"""#!KAMAILIO
#
# avatar_mf lab proxy: a stateful Kamailio 5.6 in front of one or several Media Function (MF)
# nodes. It stands in for the operator's IMS core (P-CSCF/S-CSCF with its registrar) routing
# calls through a pool of MF nodes, as an S-CSCF routes them through an application server:
#
#   UE1 --INVITE sip:ue2--> Kamailio --> MF node (hash of "ue2") --2nd leg--> Kamailio --> UE2
#   UE  --INVITE sip:room1--> Kamailio --> MF node (hash of "room1"): every UE of room1 meets there
#
# - REGISTER: Kamailio is the registrar (usrloc in memory); UEs register their Contact.
# - Initial requests from a UE (INVITE or any other out-of-dialog request) go to a dispatcher
#   set of MF nodes, chosen by a hash of the Request-URI user: every call to one room (or to
#   one user) reaches the same node while different rooms spread over the nodes.
# - Initial requests from an MF node (the second leg of a two-leg call, the MF acting as a
#   B2BUA) go to the Contact the called user registered (lookup); 404 if it has none.
# - The proxy record-routes every INVITE, so BYE, ACK and re-INVITE/UPDATE in both directions
#   (UE -> MF, MF -> UE, on both legs) pass through it.
# - Every node is probed with OPTIONS each second. A node answers 200, or 503 while it drains
#   (SIGTERM); anything but 2xx, or no answer, marks it inactive and it gets no new calls.
# - A call sent to a node that answers 503 or does not answer at all (408 / timeout) is retried
#   on the next node (failure_route + ds_next_dst), so calls placed before the probe notices a
#   dead node still succeed.
#
# This one file serves the tests (avatar_mf.testing.kamailio), `make lab` and docker compose.
# It is written out from avatar_mf/testing/kamailio.py (KAMAILIO_CFG; a test keeps the two
# equal: `python -m avatar_mf.testing.kamailio write-config docker/kamailio/kamailio.cfg`).
# It is parametrised by pre-processor defines (#!trydef: the defaults below), each overridable
# on the command line with -A NAME=VALUE (strings quoted: -A 'CTL_SOCKET="unix:/tmp/ctl"'):
#
#   LISTEN_IP         address to listen on, UDP and TCP      127.0.0.1
#   LISTEN_PORT       SIP port                                5070
#   DISPATCHER_LIST   file of MF nodes, one per line         "/etc/kamailio/dispatcher.list"
#   CTL_SOCKET        kamcmd control socket                  "unix:/run/kamailio/kamailio_ctl"
#   CHILDREN          SIP worker processes, UDP and TCP      4
#   FR_TIMER          ms without any reply: branch fails     2000
#   DS_PING_INTERVAL  s between OPTIONS probes of a node     1
#   REG_MIN_EXPIRES   shortest registration granted (s)     60
#   REG_MAX_EXPIRES   longest registration granted (s)      3600
#   DBG               log level: -1 error .. 2 info, 3 debug 1
#
# Run in the foreground, logging to stderr, with its own run directory (no /run needed):
#   kamailio -DD -E -f kamailio.cfg -Y RUNDIR -P RUNDIR/kamailio.pid \
#            -A 'DISPATCHER_LIST="/path/dispatcher.list"' -A 'CTL_SOCKET="unix:RUNDIR/ctl"'
# Check it with: kamailio -c -f kamailio.cfg
# Node states: kamcmd -s unix:RUNDIR/ctl dispatcher.list (FLAGS AP: active, IP: inactive; the
# P means "probed with OPTIONS").

#!trydef LISTEN_IP 127.0.0.1
#!trydef LISTEN_PORT 5070
#!trydef DISPATCHER_LIST "/etc/kamailio/dispatcher.list"
#!trydef CTL_SOCKET "unix:/run/kamailio/kamailio_ctl"
#!trydef CHILDREN 4
#!trydef FR_TIMER 2000
#!trydef DS_PING_INTERVAL 1
#!trydef REG_MIN_EXPIRES 60
#!trydef REG_MAX_EXPIRES 3600
#!trydef DBG 1

# The dispatcher set that holds the MF nodes (first column of dispatcher.list).
#!define MF_SET 1
# ds_select_dst algorithm: 3 = hash over the Request-URI user (with dispatcher flag 1 below:
# the user part only, not host and port). Every call to sip:room1@... reaches the same node, so
# the UEs of one room meet there; different rooms spread over the nodes. A room's node that is
# inactive (draining, dead) is skipped: its new calls go to the next active node of the set.
# (Round-robin, alg 4, would send two UEs of one room to two nodes that never see each other.)
# In-dialog requests follow the Record-Route and Contact, whatever the algorithm.
#!define MF_ALG 3

####### Global parameters #########

debug=DBG
log_stderror=no
log_facility=LOG_LOCAL0
log_prefix="{$mt $hdr(CSeq) $ci} "
memdbg=5
memlog=5

children=CHILDREN
tcp_children=CHILDREN

listen=udp:LISTEN_IP:LISTEN_PORT
listen=tcp:LISTEN_IP:LISTEN_PORT

# Addresses are literal IPs everywhere: no DNS or reverse DNS lookups, and no host aliases
# discovered from reverse DNS (they would make `uri==myself` depend on the resolver).
auto_aliases=no
dns=no
rev_dns=no
# No "Warning:" header with the proxy's internals in its own replies.
sip_warning=no
# Header values in the proxy's own replies and requests (OPTIONS probes).
server_header="Server: avatar-lab-proxy (kamailio)"
user_agent_header="User-Agent: avatar-lab-proxy (kamailio)"
# TCP connections from UEs are closed after this many idle seconds.
tcp_connection_lifetime=3605

####### Modules #########

loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "sanity.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
loadmodule "dispatcher.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"

# ----- ctl: kamcmd talks to this socket (kamcmd -s CTL_SOCKET dispatcher.list)
modparam("ctl", "binrpc", CTL_SOCKET)

# ----- tm
# fr_timer: how long a branch waits for the first reply. The MF answers 100 Trying at once, so
# silence for FR_TIMER ms means the node is gone: the branch ends with a local 408 and the
# failure_route tries the next node. It also bounds each OPTIONS probe, so a dead node is
# marked inactive within DS_PING_INTERVAL + FR_TIMER.
modparam("tm", "fr_timer", FR_TIMER)
# fr_inv_timer: after a provisional reply, how long an INVITE may wait for the final one.
modparam("tm", "fr_inv_timer", 60000)
# 3: when the failure_route starts a new branch (the next MF node), the replies of the failed
# branches are dropped, so the UE gets the answer of the last node tried, never a stale 503.
modparam("tm", "failure_reply_mode", 3)

# ----- rr
# ";lr=on" instead of ";lr": some old UAs only recognise the valued form.
modparam("rr", "enable_full_lr", 1)
# No From tag in the Record-Route: this script never needs the direction of a request.
modparam("rr", "append_fromtag", 0)

# ----- sanity: report malformed requests to the script instead of dropping them silently.
modparam("sanity", "autodrop", 0)

# ----- usrloc / registrar: the location service (RFC 3261 10), in memory only
# db_mode 0: no database; registrations are lost when Kamailio restarts (UEs re-register).
modparam("usrloc", "db_mode", 0)
# Expired contacts are purged every 10 s (lookup never returns one that has expired).
modparam("usrloc", "timer_interval", 10)
# A REGISTER asking less than REG_MIN_EXPIRES gets 423 Interval Too Brief with Min-Expires
# (RFC 3261 10.3 step 7), more than REG_MAX_EXPIRES is granted REG_MAX_EXPIRES.
modparam("registrar", "min_expires", REG_MIN_EXPIRES)
modparam("registrar", "min_expires_mode", 1)
modparam("registrar", "max_expires", REG_MAX_EXPIRES)
modparam("registrar", "default_expires", REG_MAX_EXPIRES)

# ----- dispatcher: the MF node pool
modparam("dispatcher", "list_file", DISPATCHER_LIST)
# 3 = 1 + 2. 1: the URI hashes of ds_select_dst (MF_ALG 3) use the user part only, so
# sip:room1@10.0.0.1 and sip:room1@proxy.example reach the same node. 2: failover:
# ds_select_dst keeps the other active nodes of the set in an XAVP list, so that ds_next_dst()
# in the failure_route can try them in turn.
modparam("dispatcher", "flags", 3)
# Send an OPTIONS probe to every node each DS_PING_INTERVAL seconds...
modparam("dispatcher", "ds_ping_interval", DS_PING_INTERVAL)
# ... to all of them, active or not (1), not only to those already flagged as probing (0), so
# a draining node is noticed before it is sent a call.
modparam("dispatcher", "ds_probing_mode", 1)
# Which probe replies mean "up": 2xx only. The MF answers OPTIONS 503 while it drains and tm
# makes a local 408 when a node does not answer; both count as failures. Never list 408 or 5xx
# here, or a dead or draining node would stay active.
modparam("dispatcher", "ds_ping_reply_codes", "class=2")
# One failed probe (503 or timeout) moves a node straight from active to inactive: a draining
# MF refuses every new call anyway, so there is nothing to gain from waiting for a second one.
modparam("dispatcher", "ds_probing_threshold", 1)
# One 200 brings an inactive node back (a restarted MF is ready when it answers OPTIONS).
modparam("dispatcher", "ds_inactive_threshold", 1)
# From URI of the probes (the MF accepts any; this one names the prober in MF logs).
modparam("dispatcher", "ds_ping_from", "sip:dispatcher@avatar-lab-proxy")

####### Routing logic ########

request_route {
	route(REQINIT);

	# CANCEL: relayed statefully to the branches of the INVITE transaction it matches
	# (RFC 3261 16.10); a CANCEL that matches nothing is dropped (tm answered the UE already
	# if it was a late CANCEL for a finished transaction).
	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}

	# Retransmissions of requests whose transaction exists are absorbed by tm.
	if (!is_method("ACK")) {
		if (t_precheck_trans()) {
			t_check_trans();
			exit;
		}
		t_check_trans();
	}

	route(WITHINDLG);

	### Initial requests only from here on (no To tag).

	# Ignore pre-loaded Route headers: this proxy decides the next hop itself.
	remove_hf("Route");

	# OPTIONS to the proxy itself (no user part): answer it here (keepalive).
	if (is_method("OPTIONS") && uri == myself && $rU == $null) {
		sl_send_reply("200", "Keepalive");
		exit;
	}

	# An ACK without To tag that matched no transaction (see above) has nowhere to go.
	if (is_method("ACK")) {
		exit;
	}

	if (is_method("REGISTER")) {
		route(REGISTRAR);
	}

	# Stay on the path of the dialog: the MF's BYE and the UE's ACK/BYE come back here.
	if (is_method("INVITE|SUBSCRIBE")) {
		record_route();
	}

	# A request an MF node places (the second leg of a two-leg call) goes to the called
	# user's registered Contact; a UE's request goes to an MF node.
	route(FROM_MF);
	if ($var(from_mf) == 1) {
		route(LOCATION);
	}
	route(DISPATCH);
}

# REGISTER (RFC 3261 10.3): save the Contact bindings of the To URI's user and answer 200
# with every binding and its granted expires; 423 below REG_MIN_EXPIRES. No authentication:
# this is a lab.
route[REGISTRAR] {
	if (!save("location")) {
		sl_reply_error();
	}
	xlog("L_INFO", "REGISTER $tu from $si:$sp\n");
	exit;
}

# Sets $var(from_mf) to 1 when the request comes from an MF node of the dispatcher set: its
# source address is the node's and its top Via sent-by port (the node's listening port, RFC
# 3261 18.1.1, also over TCP where the source port of the connection is ephemeral) the node's
# port. Mode 2: the transport is not compared (the list has no transport parameters).
route[FROM_MF] {
	$var(from_mf) = 0;
	$var(via_port) = $(sel(via[1].port){s.int});
	if ($var(via_port) == 0) {
		$var(via_port) = 5060;
	}
	if (ds_is_from_list(MF_SET, 2, "sip:$si:$var(via_port)")) {
		$var(from_mf) = 1;
	}
}

# A request from an MF node: to the Contact registered for the Request-URI user (usrloc
# lookup rewrites the Request-URI, RFC 3261 16.5). An MF node never gets its own calls back,
# and a call to a user with no registration ends here: 404.
route[LOCATION] {
	if (!lookup("location")) {
		$var(rc) = $rc;
		xlog("L_INFO", "$rm $tu from MF: not registered ($var(rc))\n");
		if ($var(rc) == -2) {
			sl_send_reply("405", "Method Not Allowed");
			exit;
		}
		sl_send_reply("404", "Not Found");
		exit;
	}
	xlog("L_INFO", "$rm $tu from MF => contact $ru\n");
	route(RELAY);
}

# Per-request checks.
route[REQINIT] {
	# Replies go back to the source address and port of the request (RFC 3581), whatever the
	# UE wrote in its Via: symmetric signalling, as a P-CSCF does.
	force_rport();

	# Max-Forwards (RFC 3261 16.3 step 3): 483 when it reaches 0; a request without one gets
	# Max-Forwards: 10 (a proxy loop ends quickly).
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}

	# 17895 = R-URI version (1) and scheme (2), mandatory headers (4), CSeq method (32) and
	# number (64), Content-Length (128), Expires (256), URIs parse (1024), top Via (16384);
	# 7 = which URIs must parse: R-URI (1), From (2), To (4). Failures are answered 400.
	if (!sanity_check("17895", "7")) {
		xlog("L_WARN", "malformed SIP request from $si:$sp\n");
		exit;
	}
}

# Requests inside a dialog (To tag present): follow the route set (RFC 3261 16.4, 16.12).
route[WITHINDLG] {
	if (!has_totag()) {
		return;
	}
	# loose_route() removes the Route entry that names this proxy (its own Record-Route) and
	# leaves the Request-URI (the remote target: UE or MF Contact) as the destination.
	if (loose_route()) {
		route(RELAY);
		exit;
	}
	if (is_method("ACK")) {
		# ACK for a non-2xx final response: hop-by-hop, it belongs to the INVITE transaction
		# (RFC 3261 17.1.1.3) and tm relays it. Any other ACK without a Route to us is stray.
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	# An in-dialog request that does not carry our Route: not ours to route.
	sl_send_reply("404", "Not here");
	exit;
}

# Initial requests: pick an MF node from the dispatcher set.
route[DISPATCH] {
	# Sets $du (the next hop) to an active node and keeps the others for failover; the
	# Request-URI is left as the UE sent it, as an S-CSCF routing to an application server does.
	if (!ds_select_dst(MF_SET, MF_ALG)) {
		xlog("L_WARN", "no active MF node for $rm $ru\n");
		append_to_reply("Retry-After: 5\r\n");
		sl_send_reply("503", "No Media Function Available");
		exit;
	}
	xlog("L_INFO", "$rm $ru -> $du\n");
	t_on_failure("MF_FAILOVER");
	route(RELAY);
}

route[RELAY] {
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

# A branch to an MF node failed: try the next node on 503 (draining or overloaded) and on
# 408/timeout (no answer at all: the node is gone). Other failures (4xx, 500, 488) are the
# call's own and go back to the UE unchanged.
failure_route[MF_FAILOVER] {
	if (t_is_canceled()) {
		exit;
	}
	if (t_check_status("503") || t_check_status("408") || t_branch_timeout()) {
		# Take the node out of rotation now and let the probes bring it back when it answers
		# OPTIONS 200 again ("i" inactive, "p" probing).
		ds_mark_dst("ip");
		if (ds_next_dst()) {
			xlog("L_NOTICE", "$rm $ru: MF node failed ($T_reply_code), retrying on $du\n");
			t_on_failure("MF_FAILOVER");
			route(RELAY);
			exit;
		}
		# No node left. RFC 3261 16.7 step 6: a proxy does not forward a 503 (it would make
		# the UE think the proxy itself is overloaded): the proxy answers for itself.
		xlog("L_WARN", "$rm $ru: no MF node left\n");
		append_to_reply("Retry-After: 5\r\n");
		t_reply("503", "No Media Function Available");
		exit;
	}
}
"""


class KamailioError(RuntimeError):
    """Kamailio could not be found, did not start, or a control command failed."""


def _find(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    return shutil.which(name, path=path)


def find_kamailio() -> str | None:
    """The ``kamailio`` binary, or None when the Debian package is not installed."""
    return _find("kamailio")


def find_kamcmd() -> str | None:
    """The ``kamcmd`` binary (Debian ships it in the ``kamailio`` package), or None."""
    return _find("kamcmd")


def _node_uri(node: str) -> str:
    """``127.0.0.1:5080`` -> ``sip:127.0.0.1:5080``; SIP URIs are kept as they are."""
    return node if node.startswith(("sip:", "sips:")) else f"sip:{node}"


def dispatcher_list(nodes: Iterable[str], set_id: int = MF_SET) -> str:
    """The ``dispatcher.list`` text for MF nodes given as ``host:port`` or SIP URIs.

    One line per node: set id, URI, flags 8 (probing: OPTIONS from the start), priority 0.
    """
    lines = ["# set  destination  flags(8 = probe with OPTIONS)  priority"]
    lines += [f"{set_id} {_node_uri(node)} 8 0" for node in nodes]
    return "\n".join(lines) + "\n"


_DEST = re.compile(r"URI:\s*(\S+)\s+FLAGS:\s*(\w+)")


def parse_dispatcher_list(text: str) -> dict[str, str]:
    """``kamcmd dispatcher.list`` output -> ``{uri: flags}``, e.g. ``{"sip:127.0.0.1:5080": "AP"}``.

    The first flag letter is the state (A active, I inactive, T trying, D disabled), the second
    P when the node is probed with OPTIONS, X when not.
    """
    return dict(_DEST.findall(text))


def sip_options_ping(
    host: str, port: int, *, timeout: float = 0.5, uri: str | None = None
) -> str | None:
    """Send one OPTIONS over UDP from loopback; return the response text, or None on timeout."""
    target = uri or f"sip:{host}:{port}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local_port = sock.getsockname()[1]
        tag = uuid.uuid4().hex[:10]
        request = (
            f"OPTIONS {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1:{local_port}>;tag={tag}\r\n"
            f"To: <{target}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.settimeout(timeout)
        sock.sendto(request.encode(), (host, port))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            text = data.decode(errors="replace")
            if not text.startswith("SIP/2.0 1"):  # skip provisional responses
                return text


@dataclass
class KamailioProxy:
    """One Kamailio process in front of a set of MF nodes. Use :meth:`start`."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    workdir: Path
    config_path: Path
    dispatcher_path: Path
    ctl_socket: str
    log_path: Path
    nodes: tuple[str, ...]
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        workdir: Path,
        nodes: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        children: int = 2,
        fr_timer_ms: int = 2000,
        ping_interval: int = 1,
        reg_min_expires: int = 60,
        reg_max_expires: int = 3600,
        debug: int = 2,
        shm_mb: int = 32,
        pkg_mb: int = 4,
        timeout: float = 15.0,
        kamailio: str | None = None,
    ) -> KamailioProxy:
        """Write the config and ``dispatcher.list`` for ``nodes`` (``host:port`` or SIP URIs)
        into ``workdir`` and start Kamailio on ``host:port`` (UDP and TCP; a free port when
        ``port`` is None). Returns once it answers OPTIONS; raises :class:`KamailioError` if it
        exits or stays silent for ``timeout`` seconds.

        ``debug`` 2 logs one line per dispatched request (``INVITE sip:... -> sip:node``) and
        one per failover (``retrying on``) to ``kamailio.log``.
        """
        binary = kamailio or find_kamailio()
        if binary is None:
            raise KamailioError(
                "kamailio not found: install the Debian package kamailio (make sysdeps does)"
            )
        if not nodes:
            raise ValueError("at least one MF node is needed")
        workdir = workdir.resolve()
        run_dir = workdir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        if port is None:
            from avatar_mf.testing.process import free_port

            port = free_port(host)
        config_path = workdir / "kamailio.cfg"
        config_path.write_text(KAMAILIO_CFG)
        dispatcher_path = workdir / "dispatcher.list"
        dispatcher_path.write_text(dispatcher_list(nodes))
        ctl_socket = f"unix:{run_dir / 'kamailio_ctl'}"
        defines = {
            "LISTEN_IP": host,
            "LISTEN_PORT": str(port),
            "DISPATCHER_LIST": f'"{dispatcher_path}"',
            "CTL_SOCKET": f'"{ctl_socket}"',
            "CHILDREN": str(children),
            "FR_TIMER": str(fr_timer_ms),
            "DS_PING_INTERVAL": str(ping_interval),
            "REG_MIN_EXPIRES": str(reg_min_expires),
            "REG_MAX_EXPIRES": str(reg_max_expires),
            "DBG": str(debug),
        }
        argv = [
            binary,
            "-DD",  # stay in the foreground (the creator process does not daemonize)
            "-E",  # log to stderr
            "-f", str(config_path),
            "-Y", str(run_dir),  # runtime dir: nothing under /run/kamailio
            "-P", str(run_dir / "kamailio.pid"),
            "-w", str(workdir),  # working dir (core files)
            "-m", str(shm_mb),
            "-M", str(pkg_mb),
        ]  # fmt: skip
        for name, value in defines.items():
            argv += ["-A", f"{name}={value}"]
        log_path = workdir / "kamailio.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends every child
            )
        proxy = cls(
            proc,
            host,
            port,
            workdir,
            config_path,
            dispatcher_path,
            ctl_socket,
            log_path,
            tuple(_node_uri(n) for n in nodes),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise KamailioError(
                    f"kamailio exited with {proc.returncode}:\n{proxy.log_text()[-4000:]}"
                )
            reply = sip_options_ping(host, port, timeout=0.2)
            if reply is not None and reply.startswith("SIP/2.0 200"):
                return proxy
        proxy.stop()
        raise KamailioError(
            f"kamailio not answering on {host}:{port} within {timeout} s:\n"
            f"{proxy.log_text()[-4000:]}"
        )

    @property
    def address(self) -> str:
        """``host:port``, as SIPp and other UEs take it."""
        return f"{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rpc(self, *command: str, timeout: float = 5.0) -> str:
        """Run a Kamailio RPC command through ``kamcmd`` (e.g. ``rpc("dispatcher.list")``)."""
        kamcmd = find_kamcmd()
        if kamcmd is None:
            raise KamailioError("kamcmd not found (it comes with the Debian package kamailio)")
        result = subprocess.run(
            [kamcmd, "-s", self.ctl_socket, *command],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise KamailioError(
                f"kamcmd {' '.join(command)} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).decode(errors='replace').strip()}"
            )
        return result.stdout.decode(errors="replace")

    def dispatcher_states(self) -> dict[str, str]:
        """``{node URI: flags}`` from ``dispatcher.list``: ``AP`` active, ``IP`` inactive ..."""
        return parse_dispatcher_list(self.rpc("dispatcher.list"))

    def wait_for_state(
        self, uri: str, state: str, *, timeout: float = 10.0, interval: float = 0.1
    ) -> float:
        """Wait until node ``uri`` is in ``state`` (first flag letter: A, I, T or D); return
        the seconds waited. Raises TimeoutError with the last states seen."""
        uri = _node_uri(uri)
        start = time.monotonic()
        states: dict[str, str] = {}
        while True:
            states = self.dispatcher_states()
            if states.get(uri, "").startswith(state):
                return time.monotonic() - start
            if time.monotonic() - start >= timeout:
                raise TimeoutError(f"{uri} not in state {state} after {timeout} s: {states}")
            time.sleep(interval)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM Kamailio (its main process ends its workers before it exits); SIGKILL its
        process group if it is still there after ``timeout`` seconds, or if the main process
        had already died on its own (its workers may outlive it). Returns the exit code."""
        if self._stopped:
            return int(self.proc.returncode)
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.proc.wait(5)
        else:
            self._kill_group()
        return int(self.proc.returncode)

    def _kill_group(self) -> None:
        """SIGKILL the process group started with Kamailio (start_new_session: ours only)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> KamailioProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m avatar_mf.testing.kamailio write-config PATH | dispatcher-list NODE...``"""
    parser = argparse.ArgumentParser(
        prog="python -m avatar_mf.testing.kamailio",
        description="Write the lab proxy's Kamailio config or a dispatcher.list.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write-config", help="write kamailio.cfg (- for stdout)")
    write.add_argument("path")
    nodes = sub.add_parser("dispatcher-list", help="print a dispatcher.list for MF nodes")
    nodes.add_argument("nodes", nargs="+", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    if args.command == "write-config":
        if args.path == "-":
            sys.stdout.write(KAMAILIO_CFG)
        else:
            Path(args.path).write_text(KAMAILIO_CFG)
        return 0
    sys.stdout.write(dispatcher_list(args.nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
