"""`acoustic-pipelines sftp`: set up SFTP access to Acoustic Connect (reference §5.1, §5.2).

`sftp setup` generates an Ed25519 pair and registers its public key through
`updatePublicKeyForConnectUser`; `sftp trust-host` records a server's host key after showing it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from acoustic_pipelines import settings
from acoustic_pipelines.connect.client import ConnectClient
from acoustic_pipelines.connect.errors import ConnectError
from acoustic_pipelines.connect.sftp import (
    DEFAULT_COMMENT,
    DEFAULT_KEY_PATH,
    DEFAULT_KNOWN_HOSTS,
    DEFAULT_PORT,
    SftpError,
    generate_ed25519_key,
    trust_host,
)


def add_sftp_commands(commands: Any) -> None:
    """Register `sftp setup` and `sftp trust-host` on the command's subparsers."""
    sftp = commands.add_parser("sftp", help="set up SFTP access to Acoustic Connect's exports")
    actions = sftp.add_subparsers(required=True, metavar="ACTION")

    setup = actions.add_parser(
        "setup", help="generate an Ed25519 key pair and register it (updatePublicKeyForConnectUser)"
    )
    setup.add_argument(
        "--key",
        type=Path,
        default=None,
        help=f"private key file to write (default: ${settings.ACOUSTIC_SFTP_KEY_PATH_ENV}, "
        f"else {DEFAULT_KEY_PATH}); the public key goes beside it as .pub",
    )
    setup.add_argument("--comment", default=DEFAULT_COMMENT, help=f'default "{DEFAULT_COMMENT}"')
    setup.add_argument("--force", action="store_true", help="replace an existing key pair")
    setup.set_defaults(run=_run_setup)

    trust = actions.add_parser(
        "trust-host", help="record an SFTP server's host key in a known-hosts file"
    )
    trust.add_argument("host", help="the SFTP host (reference §5.2 lists one per region)")
    trust.add_argument("--port", type=int, default=None, help=f"default {DEFAULT_PORT}")
    trust.add_argument(
        "--known-hosts",
        type=Path,
        default=None,
        help=f"default: ${settings.ACOUSTIC_SFTP_KNOWN_HOSTS_ENV}, else {DEFAULT_KNOWN_HOSTS}",
    )
    trust.set_defaults(run=_run_trust_host)


def _run_setup(args: argparse.Namespace) -> int:
    """`sftp setup`: write the pair, register the public key, print the settings."""
    api_key = os.environ.get(settings.ACOUSTIC_API_KEY_ENV)
    endpoint = os.environ.get(settings.ACOUSTIC_CONNECT_ENDPOINT_ENV)
    if not api_key or not endpoint:
        print(
            f"sftp setup: set {settings.ACOUSTIC_API_KEY_ENV} and "
            f"{settings.ACOUSTIC_CONNECT_ENDPOINT_ENV} to register the key",
            file=sys.stderr,
        )
        return 2
    key_path = Path(
        args.key or os.environ.get(settings.ACOUSTIC_SFTP_KEY_PATH_ENV) or DEFAULT_KEY_PATH
    ).expanduser()
    try:
        key = generate_ed25519_key(key_path, comment=args.comment, force=args.force)
    except FileExistsError as exc:
        print(f"sftp setup: {exc} (use --force to replace it)", file=sys.stderr)
        return 1
    print(f"wrote {key.private_path} (mode 0600) and {key.public_path}")
    print(f"fingerprint: {key.fingerprint}")
    try:
        with ConnectClient(api_key=api_key, endpoint=endpoint) as client:
            client.update_public_key(key.public_line)
    except ConnectError as exc:
        print(f"sftp setup: registering the key failed: {exc}", file=sys.stderr)
        return 1
    print(f"registered with updatePublicKeyForConnectUser at {endpoint}:")
    print(f"  {key.public_line}")
    print("settings to use (add the host, port and your Connect login e-mail as the user):")
    print(f"export {settings.ACOUSTIC_SFTP_KEY_PATH_ENV}={shlex.quote(str(key.private_path))}")
    for name in (settings.ACOUSTIC_SFTP_HOST_ENV, settings.ACOUSTIC_SFTP_USER_ENV):
        print(f"export {name}={shlex.quote(os.environ.get(name, ''))}")
    print(
        f"export {settings.ACOUSTIC_SFTP_PORT_ENV}={os.environ.get(settings.ACOUSTIC_SFTP_PORT_ENV, DEFAULT_PORT)}"
    )
    known_hosts = os.environ.get(settings.ACOUSTIC_SFTP_KNOWN_HOSTS_ENV, DEFAULT_KNOWN_HOSTS)
    print(f"export {settings.ACOUSTIC_SFTP_KNOWN_HOSTS_ENV}={shlex.quote(known_hosts)}")
    print("then record the server's host key: acoustic-pipelines sftp trust-host HOST")
    return 0


def _run_trust_host(args: argparse.Namespace) -> int:
    """`sftp trust-host HOST`: fetch the host key, record it, print its fingerprint."""
    port = args.port or int(os.environ.get(settings.ACOUSTIC_SFTP_PORT_ENV) or DEFAULT_PORT)
    known_hosts = (
        args.known_hosts
        or os.environ.get(settings.ACOUSTIC_SFTP_KNOWN_HOSTS_ENV)
        or DEFAULT_KNOWN_HOSTS
    )
    try:
        trusted = trust_host(args.host, port, known_hosts)
    except SftpError as exc:
        print(f"sftp trust-host: {exc}", file=sys.stderr)
        return 1
    print(f"{trusted.host_entry} {trusted.key_type} {trusted.fingerprint}")
    if trusted.previous_fingerprint and trusted.previous_fingerprint != trusted.fingerprint:
        print(f"replaced the earlier key {trusted.previous_fingerprint}")
    print(
        f"recorded in {Path(known_hosts).expanduser()}; compare the fingerprint with the one Acoustic gives you"
    )
    return 0
