"""The Connect sandbox's SFTP server (reference §5): paramiko's server mode on 127.0.0.1.

- Its own Ed25519 host key, generated once into the sandbox folder (`sftp_host_ed25519_key`).
- Public-key authentication only, against the key registered for the user through
  `updatePublicKeyForConnectUser` (the Connect sandbox store); no passwords.
- Each user sees its `sub_<subscriptionId>` directory as `/`; a path that climbs above it
  (`..`, or a symlink pointing out) is refused with "permission denied".
- `Export/…` is read-only (Acoustic writes it); elsewhere users may upload and create folders,
  within the directory limits of §5.3 (100 files, 5 GB; configurable for tests).
"""

from __future__ import annotations

import hmac
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from paramiko.sftp import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)

from acoustic_pipelines.connect.client import ConnectClient
from acoustic_pipelines.connect.sftp import (
    SftpSettings,
    fingerprint,
    generate_ed25519_key,
    host_entry,
)
from acoustic_pipelines.sandbox.connect.public_keys import PublicKeyError, parse_ed25519_public_key
from acoustic_pipelines.sandbox.connect.server import ConnectSandbox

log = logging.getLogger(__name__)
# paramiko logs a client's ordinary disconnect ("Connection reset by peer") as an ERROR of the
# server's transport; the sandbox's own log says what matters.
_TRANSPORT_LOG = logging.getLogger(f"{__name__}.transport")
_TRANSPORT_LOG.setLevel(logging.CRITICAL)

HOST_KEY_FILE = "sftp_host_ed25519_key"
CLIENT_KEY_FILE = "sftp_client_ed25519_key"
KNOWN_HOSTS_FILE = "sftp_known_hosts"
EXPORT_FOLDER = "Export"
MAX_FILES = 100
MAX_BYTES = 5 * 1024**3
WINDOW_SIZE = 64 * 1024 * 1024
MAX_PACKET_SIZE = 256 * 1024
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@dataclass(frozen=True)
class SftpSandbox:
    """A running sandbox SFTP server: where it listens, its user and its host key."""

    host: str
    port: int
    user: str
    host_key_fingerprint: str
    known_hosts_line: str

    def write_known_hosts(self, path: Path) -> Path:
        """Write a known-hosts file that pins this server's host key; the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.known_hosts_line + "\n", encoding="utf-8")
        return path


@dataclass(frozen=True)
class DirectoryLimits:
    """The subscription directory's limits on uploads (reference §5.3)."""

    max_files: int = MAX_FILES
    max_bytes: int = MAX_BYTES


class _Refused(Exception):
    """A path outside the user's directory, or a write into the read-only exports."""


class _SshServer(paramiko.ServerInterface):
    """One connection's SSH side: public-key auth against the store, session channels only."""

    def __init__(self, sandbox: ConnectSandbox, limits: DirectoryLimits) -> None:
        self.sandbox = sandbox
        self.limits = limits
        self.root: Path | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username != self.sandbox.sftp_user or not _registered(self.sandbox, username, key):
            log.info(
                "SFTP sandbox: refused %s key %s for %r", key.get_name(), fingerprint(key), username
            )
            return paramiko.AUTH_FAILED
        self.root = self.sandbox.subscription_folder
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


def _registered(sandbox: ConnectSandbox, user: str, key: paramiko.PKey) -> bool:
    """Whether `key` is the Ed25519 key registered for `user`."""
    line = sandbox.store.public_key(user)
    if line is None or key.get_name() != "ssh-ed25519":
        return False
    try:
        parse_ed25519_public_key(line)
    except PublicKeyError:
        return False
    return hmac.compare_digest(line.split()[1], key.get_base64())


class _Handle(paramiko.SFTPHandle):
    """An open file; writes stop at the directory's storage limit."""

    def __init__(self, flags: int, file: Any, path: Path, allowed_size: int | None) -> None:
        super().__init__(flags)
        self.filename = str(path)
        self.allowed_size = allowed_size
        if flags & (os.O_WRONLY | os.O_RDWR):
            self.writefile = file
        if not flags & os.O_WRONLY:
            self.readfile = file

    def write(self, offset: int, data: bytes) -> int:
        if self.allowed_size is not None and offset + len(data) > self.allowed_size:
            log.info("SFTP sandbox: %s would pass the %s-byte limit", self.filename, MAX_BYTES)
            return SFTP_FAILURE
        return super().write(offset, data)

    def stat(self) -> paramiko.SFTPAttributes | int:
        file = self.readfile if hasattr(self, "readfile") else self.writefile
        return paramiko.SFTPAttributes.from_stat(os.fstat(file.fileno()))

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_OP_UNSUPPORTED


class _Sftp(paramiko.SFTPServerInterface):
    """The SFTP side: the user's directory as `/`, exports read-only, uploads within limits."""

    def __init__(self, server: _SshServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        if server.root is None:
            raise paramiko.SSHException("SFTP requested before authentication")
        self.root = server.root
        self.limits = server.limits

    # --- paths --------------------------------------------------------------------------

    def _parts(self, path: str) -> list[str]:
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise _Refused(f"{path!r} climbs above the subscription directory")
                parts.pop()
            else:
                parts.append(part)
        return parts

    def _real(self, path: str, *, write: bool = False) -> Path:
        parts = self._parts(path)
        if write and parts[:1] == [EXPORT_FOLDER]:
            raise _Refused(f"{path!r} is in the read-only {EXPORT_FOLDER} folder")
        real = self.root.joinpath(*parts)
        resolved = os.path.realpath(real)
        root = os.path.realpath(self.root)
        if resolved != root and not resolved.startswith(root + os.sep):
            raise _Refused(f"{path!r} leads out of the subscription directory")
        return real

    def canonicalize(self, path: str) -> str:
        try:
            return "/" + "/".join(self._parts(path))
        except _Refused:
            return "/"

    # --- reading ------------------------------------------------------------------------

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        return _answer(lambda: _listing(self._real(path)))

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return _answer(lambda: paramiko.SFTPAttributes.from_stat(os.stat(self._real(path))))

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return _answer(lambda: paramiko.SFTPAttributes.from_stat(os.lstat(self._real(path))))

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> _Handle | int:
        return _answer(lambda: self._open(path, flags))

    def _open(self, path: str, flags: int) -> _Handle | int:
        writing = bool(flags & _WRITE_FLAGS)
        real = self._real(path, write=writing)
        allowed = None
        if writing:
            files, used = _usage(self.root)
            existing = real.stat().st_size if real.is_file() else None
            if existing is None and files >= self.limits.max_files:
                log.info("SFTP sandbox: %s refused, %d files already", path, files)
                return SFTP_FAILURE
            allowed = self.limits.max_bytes - (used - (existing or 0))
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        fd = os.open(real, flags | getattr(os, "O_BINARY", 0), 0o644)
        return _Handle(flags, os.fdopen(fd, mode), real, allowed)

    # --- writing (never under Export/) --------------------------------------------------

    def remove(self, path: str) -> int:
        return _answer(lambda: os.remove(self._real(path, write=True)))

    def rename(self, oldpath: str, newpath: str) -> int:
        def rename() -> None:
            target = self._real(newpath, write=True)
            if target.exists():
                raise FileExistsError(newpath)
            os.rename(self._real(oldpath, write=True), target)

        return _answer(rename)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return _answer(
            lambda: os.replace(self._real(oldpath, write=True), self._real(newpath, write=True))
        )

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return _answer(lambda: os.mkdir(self._real(path, write=True)))

    def rmdir(self, path: str) -> int:
        return _answer(lambda: os.rmdir(self._real(path, write=True)))

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_OP_UNSUPPORTED

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_OP_UNSUPPORTED


def _answer(action: Any) -> Any:
    """Run one SFTP operation; map refusals and OS errors onto SFTP status codes."""
    try:
        result = action()
    except _Refused as exc:
        log.info("SFTP sandbox: refused: %s", exc)
        return SFTP_PERMISSION_DENIED
    except FileNotFoundError:
        return SFTP_NO_SUCH_FILE
    except OSError as exc:
        return paramiko.SFTPServer.convert_errno(exc.errno)
    return SFTP_OK if result is None else result


def _listing(folder: Path) -> list[paramiko.SFTPAttributes]:
    entries = []
    for entry in os.scandir(folder):
        attributes = paramiko.SFTPAttributes.from_stat(entry.stat(follow_symlinks=False))
        attributes.filename = entry.name
        entries.append(attributes)
    return entries


def _usage(root: Path) -> tuple[int, int]:
    """Files and bytes under `root`."""
    files = size = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            with suppress(FileNotFoundError):
                size += os.lstat(os.path.join(folder, name)).st_size
                files += 1
    return files, size


def load_host_key(folder: Path) -> paramiko.Ed25519Key:
    """The sandbox's SFTP host key in `folder`, generated on first use."""
    path = Path(folder) / HOST_KEY_FILE
    if not path.exists():
        generate_ed25519_key(path, comment="acoustic-pipelines sandbox SFTP host key")
    return paramiko.Ed25519Key(filename=str(path))


@contextmanager
def serve_sftp(
    *,
    sandbox: ConnectSandbox,
    port: int = 0,
    host: str = "127.0.0.1",
    limits: DirectoryLimits | None = None,
) -> Iterator[SftpSandbox]:
    """Serve the sandbox's SFTP folder on `host`:`port` (0 = a free port) until the block ends."""
    host_key = load_host_key(sandbox.folder)
    sandbox.subscription_folder.mkdir(parents=True, exist_ok=True)
    limits = limits or DirectoryLimits()
    listener = socket.create_server((host, port))
    listener.settimeout(0.1)
    bound = listener.getsockname()[1]
    stop = threading.Event()
    transports: list[paramiko.Transport] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                client, _address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            transport = paramiko.Transport(
                client, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
            )
            transport.add_server_key(host_key)
            transport.set_log_channel(_TRANSPORT_LOG.name)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Sftp)
            try:
                transport.start_server(event=threading.Event(), server=_SshServer(sandbox, limits))
            except paramiko.SSHException:
                transport.close()
                continue
            transports.append(transport)

    thread = threading.Thread(target=accept_loop, name="sftp-sandbox", daemon=True)
    thread.start()
    served = SftpSandbox(
        host=host,
        port=bound,
        user=sandbox.sftp_user,
        host_key_fingerprint=fingerprint(host_key),
        known_hosts_line=f"{host_entry(host, bound)} {host_key.get_name()} {host_key.get_base64()}",
    )
    log.info("SFTP sandbox on %s:%d, host key %s", host, bound, served.host_key_fingerprint)
    try:
        yield served
    finally:
        stop.set()
        thread.join()
        listener.close()
        for transport in transports:
            transport.close()


def client_settings(*, sandbox: ConnectSandbox, sftp: SftpSandbox, folder: Path) -> SftpSettings:
    """Settings for logging in to the sandbox: a client key (made once in `folder`), registered
    through `updatePublicKeyForConnectUser` over the sandbox's GraphQL API, and a known-hosts file
    pinning the server's host key."""
    folder = Path(folder)
    key_path = folder / CLIENT_KEY_FILE
    public_path = key_path.with_name(key_path.name + ".pub")
    if key_path.exists() and public_path.exists():
        public_line = public_path.read_text(encoding="utf-8").strip()
    else:
        public_line = generate_ed25519_key(
            key_path, comment="acoustic-pipelines sandbox client", force=True
        ).public_line
    with ConnectClient(api_key=sandbox.api_key, endpoint=sandbox.endpoint) as client:
        client.update_public_key(public_line)
    known_hosts = sftp.write_known_hosts(folder / KNOWN_HOSTS_FILE)
    return SftpSettings(
        host=sftp.host, port=sftp.port, user=sftp.user, key_path=key_path, known_hosts=known_hosts
    )
