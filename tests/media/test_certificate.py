"""One DTLS certificate per process, stable across factories and (persisted) restarts."""

from __future__ import annotations

import datetime
import re
import stat
from pathlib import Path

import pytest

from avatar_mf.media import CertificateStore, DataChannelEndpointFactory, RemoteParams, StreamSpec
from avatar_mf.media.certificate import CERT_FILE, KEY_FILE

from .conftest import HOST

REMOTE = RemoteParams(address=HOST, port=9, setup="actpass", fingerprints=(("sha-256", "AA"),))


async def test_fingerprint_shared_by_factories_and_sessions() -> None:
    store = CertificateStore.generate()
    first = DataChannelEndpointFactory(store, media_host=HOST)
    second = DataChannelEndpointFactory(store, media_host=HOST)
    sessions = [
        await first.create(REMOTE, [StreamSpec(0)]),
        await first.create(REMOTE, [StreamSpec(0)]),
        await second.create(REMOTE, [StreamSpec(0)]),
    ]
    try:
        assert {s.local.fingerprints for s in sessions} == {
            (("sha-256", store.fingerprint("sha-256")),)
        }
    finally:
        for session in sessions:
            await session.close()


def test_fingerprint_format() -> None:
    store = CertificateStore.generate()
    assert re.fullmatch(r"([0-9A-F]{2}:){19}[0-9A-F]{2}", store.fingerprint("sha-1"))
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", store.fingerprint("sha-256"))
    assert store.fingerprints(("sha-256", "sha-1"))[1][0] == "sha-1"
    with pytest.raises(ValueError):
        store.fingerprint("md5")


def test_persisted_certificate_survives_restart(tmp_path: Path) -> None:
    folder = tmp_path / "dtls"
    first = CertificateStore.load_or_create(folder)
    assert stat.S_IMODE((folder / KEY_FILE).stat().st_mode) == 0o600
    restarted = CertificateStore.load_or_create(folder)
    assert restarted.fingerprint() == first.fingerprint()
    assert restarted.fingerprint("sha-1") == first.fingerprint("sha-1")
    assert CertificateStore.load_or_create(None).fingerprint() != first.fingerprint()


def test_expiring_or_broken_certificate_is_replaced(tmp_path: Path) -> None:
    soon = CertificateStore.generate(validity_days=2)
    soon.save(tmp_path)
    renewed = CertificateStore.load_or_create(tmp_path, renew_before_days=7)
    assert renewed.fingerprint() != soon.fingerprint()
    assert renewed.expires > datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(300)
    assert CertificateStore.load(tmp_path).fingerprint() == renewed.fingerprint()

    (tmp_path / CERT_FILE).write_text("garbage")
    replaced = CertificateStore.load_or_create(tmp_path)
    assert replaced.fingerprint() != renewed.fingerprint()


def test_fingerprint_rule_accepts_sha1_and_needs_all_supported_to_match() -> None:
    from avatar_mf.media.dtls_transport import fingerprints_match

    store = CertificateStore.generate()
    peer = {a: store.fingerprint(a) for a in ("sha-1", "sha-256")}
    sha1 = store.fingerprint("sha-1")
    assert fingerprints_match(peer, [("SHA-1", sha1.lower())]) == (True, "")
    assert fingerprints_match(peer, [("md5", "00")])[0] is False
    assert fingerprints_match(peer, [("md5", "00"), ("sha-1", sha1)])[0] is True
    assert fingerprints_match(peer, [("sha-1", sha1), ("sha-256", "00:11")]) == (
        False,
        "sha-256 fingerprint mismatch",
    )
