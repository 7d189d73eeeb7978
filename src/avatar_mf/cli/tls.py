"""``avatar-mf tls ...``: certificates for the tls and wss listeners.

::

    avatar-mf tls generate-cert --out DIR [--host NAME ...] [--days N] [--force]

``generate-cert`` writes a lab pair into DIR (created if missing): ``ca.pem``, a one-off CA
whose key is not kept (clients trust it: a browser imports it, the test UE and SIPp load it),
``cert.pem``, the node's certificate signed by it for every ``--host`` (names or IP
addresses; default localhost, 127.0.0.1 and ::1), and ``key.pem``, its private key (mode
0600). It then prints the settings that use them. Existing files are kept unless ``--force``.
Exit codes: 0 written; 1 not written (files exist, a folder cannot be written); 2 usage.

For production, use a certificate from the operator's CA instead: the node only reads the
two PEM files named by ``sip.tls_certificate`` and ``sip.tls_private_key``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from avatar_mf.cli.base import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, CliContext, Command

__all__ = ["CA_FILE", "CERT_FILE", "KEY_FILE", "build_commands"]

CA_FILE = "ca.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder to write the files to"
    )
    parser.add_argument(
        "--host",
        action="append",
        metavar="NAME",
        help="host name or IP address the certificate is for (repeat; default: localhost, "
        "127.0.0.1 and ::1)",
    )
    parser.add_argument("--days", type=int, default=365, help="validity in days (default: 365)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _generate(args: argparse.Namespace, context: CliContext) -> int:
    # Imported here: cryptography is not needed by the other commands.
    from avatar_mf.transport.tls import DEFAULT_LAB_HOSTS, generate_lab_certificate

    hosts: list[str] = args.host or list(DEFAULT_LAB_HOSTS)
    if args.days < 1:
        print("avatar-mf tls generate-cert: --days must be at least 1", file=context.stderr)
        return EXIT_USAGE
    out: Path = args.out
    paths = {name: out / name for name in (CA_FILE, CERT_FILE, KEY_FILE)}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not args.force:
        print(
            f"avatar-mf tls generate-cert: {', '.join(existing)} already exist(s); "
            "--force replaces them",
            file=context.stderr,
        )
        return EXIT_PROBLEMS
    pair = generate_lab_certificate(hosts, days=args.days)
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write(paths[CA_FILE], pair.ca_pem, 0o644)
        _write(paths[CERT_FILE], pair.certificate_pem, 0o644)
        _write(paths[KEY_FILE], pair.key_pem, 0o600)
    except OSError as exc:
        print(f"avatar-mf tls generate-cert: {exc}", file=context.stderr)
        return EXIT_PROBLEMS
    cert, key = paths[CERT_FILE].resolve(), paths[KEY_FILE].resolve()
    print(
        f"wrote {paths[CA_FILE]}, {paths[CERT_FILE]} and {paths[KEY_FILE]} "
        f"for {', '.join(hosts)}, valid {args.days} days\n"
        "\n"
        "[sip]\n"
        'transports = ["udp", "tcp", "tls", "ws", "wss"]\n'
        f'tls_certificate = "{cert}"\n'
        f'tls_private_key = "{key}"\n'
        "\n"
        f"Clients trust {paths[CA_FILE].resolve()} (a browser: import it as an authority).",
        file=context.stdout,
    )
    return EXIT_OK


def build_commands() -> Command:
    """The ``tls`` command group."""
    generate = Command(
        "generate-cert",
        "write a self-signed CA and server certificate for the tls and wss listeners (labs)",
        run=_generate,
        add_arguments=_arguments,
    )
    return Command(
        name="tls", help="certificates for SIP over TLS and secure WebSocket", children=(generate,)
    )
