"""SFTP access to Acoustic Connect's export files (reference §5): keys, pinned host keys, downloads.

- `generate_ed25519_key` writes the pair `ssh-keygen -t ed25519` would (OpenSSH format, private
  key mode 0600) — paramiko reads OpenSSH Ed25519 keys but cannot write them, `cryptography` can.
- Host keys are pinned from a known-hosts file: an unknown or changed key is refused with its
  SHA256 fingerprint (and the recorded one), never accepted on the fly; `trust_host` records one.
  OpenSSH's marker lines are understood (`read_known_hosts`): a key on a `@revoked` line is
  refused even where it is pinned; `@cert-authority` lines are skipped (paramiko verifies no host
  certificates, so they pin nothing here); a leading UTF-8 BOM is ignored.
- `SftpSession.download` streams with prefetch to a temporary name, checks the size against the
  remote `stat` and inflates the gzip stream to its trailer, and renames only a verified file.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from isal import isal_zlib

log = logging.getLogger(__name__)

DEFAULT_PORT = 22
DEFAULT_KEY_PATH = "~/.ssh/acoustic_connect_ed25519"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_COMMENT = "Acoustic Connect key"
# One prefetched SFTP request per read: paramiko fills a larger read by appending to a bytes
# buffer, which copies it over and over (a 4 MiB read copied ~260 MB).
READ_SIZE = paramiko.SFTPFile.MAX_REQUEST_SIZE
VERIFY_READ_SIZE = 1024 * 1024
WINDOW_SIZE = 64 * 1024 * 1024
MAX_PACKET_SIZE = 256 * 1024
PREFETCH_REQUESTS = 256


class SftpError(Exception):
    """Root of every error the SFTP side raises."""


class HostKeyError(SftpError):
    """The server's host key is not the one pinned in the known-hosts file."""

    def __init__(self, message: str, *, host: str, received: str, expected: str | None) -> None:
        super().__init__(message)
        self.host = host
        self.received = received
        self.expected = expected


class UnknownHostKeyError(HostKeyError):
    """The known-hosts file holds no key for this host (run `acoustic-pipelines sftp trust-host`)."""


class ChangedHostKeyError(HostKeyError):
    """The host offered a key other than the one recorded for it."""


class RevokedHostKeyError(HostKeyError):
    """The host offered a key the known-hosts file marks `@revoked`."""


class SftpAuthenticationError(SftpError):
    """The server refused the private key (not registered, or another user's)."""


class SftpConnectionError(SftpError):
    """The server could not be reached or the SSH session failed."""


class RemoteFileMissingError(SftpError):
    """The remote file does not exist."""


class WaitTimeoutError(RemoteFileMissingError):
    """The remote file did not appear before the timeout."""


class IntegrityError(SftpError):
    """A downloaded file is truncated or corrupt (size or gzip check failed on every attempt)."""


@dataclass(frozen=True)
class SftpSettings:
    """Where and how to connect: host, port, user, private key file, known-hosts file."""

    host: str
    user: str
    key_path: Path
    known_hosts: Path
    port: int = DEFAULT_PORT


@dataclass(frozen=True)
class GeneratedKey:
    """An Ed25519 pair written by `generate_ed25519_key`."""

    private_path: Path
    public_path: Path
    public_line: str
    fingerprint: str


@dataclass(frozen=True)
class TrustedHost:
    """A host key recorded by `trust_host`, and the one it replaced, if any."""

    host_entry: str
    key_type: str
    fingerprint: str
    previous_fingerprint: str | None


@dataclass(frozen=True)
class Download:
    """One verified download: where it landed, its size, time taken and attempts used."""

    remote: str
    local: Path
    size: int
    seconds: float
    attempts: int

    @property
    def mb_per_s(self) -> float:
        """Throughput of the successful attempt in MB/s (10**6 bytes)."""
        return self.size / 1e6 / self.seconds if self.seconds > 0 else 0.0


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH SHA256 fingerprint of a key: `SHA256:<base64, unpadded>`."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    """The known-hosts name of a host: `host` on port 22, `[host]:port` otherwise."""
    return host if port == DEFAULT_PORT else f"[{host}]:{port}"


def generate_ed25519_key(
    path: Path, *, comment: str = DEFAULT_COMMENT, force: bool = False
) -> GeneratedKey:
    """Write an Ed25519 pair: `path` (OpenSSH private key, mode 0600) and `path.pub`.

    Raises:
        FileExistsError: Either file exists and `force` is False.
    """
    path = Path(path).expanduser()
    public_path = path.with_name(path.name + ".pub")
    if not force:
        for existing in (path, public_path):
            if existing.exists():
                raise FileExistsError(f"{existing} exists; pass force=True to replace the pair")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    line = f"{public.decode()} {comment}".rstrip()
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, private, mode=0o600)
    _write_atomically(public_path, (line + "\n").encode(), mode=0o644)
    loaded = paramiko.Ed25519Key(filename=str(path))
    return GeneratedKey(path, public_path, line, fingerprint(loaded))


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to a new file created with `mode`, then rename it over `path`."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(partial, mode)
        os.replace(partial, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(partial)
        raise


@dataclass(frozen=True)
class KnownHosts:
    """A known-hosts file as read: the pinned keys and the `@revoked` ones."""

    pinned: paramiko.HostKeys
    revoked: tuple[paramiko.PKey, ...]

    def is_revoked(self, key: paramiko.PKey) -> bool:
        """Whether `key` is on a `@revoked` line (for any host: revoking is never host-scoped here)."""
        blob = key.asbytes()
        return any(r.asbytes() == blob for r in self.revoked)


def read_known_hosts(path: Path) -> KnownHosts:
    """Read an OpenSSH known-hosts file: pinned keys, `@revoked` keys; other lines skipped.

    A revoked key is removed from the pinned ones. Skipped, with a log line naming the line:
    `@cert-authority` lines, unknown markers, key types paramiko does not know, malformed lines.
    """
    entries: list[paramiko.hostkeys.HostKeyEntry] = []
    revoked: list[paramiko.PKey] = []
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        marker = stripped.split(None, 1)[0] if stripped.startswith("@") else None
        if marker not in (None, "@revoked"):
            log.info("%s line %d: %s line skipped (not used for pinning)", path, number, marker)
            continue
        body = stripped.split(None, 1)[1] if marker else stripped
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(body, number)
        except (paramiko.SSHException, ValueError) as exc:
            log.warning("%s line %d cannot be read, skipped: %s", path, number, exc)
            continue
        if entry is None:
            log.info("%s line %d: key type not supported, skipped", path, number)
        elif marker == "@revoked":
            revoked.append(entry.key)
        else:
            entries.append(entry)
    known = KnownHosts(paramiko.HostKeys(), tuple(revoked))
    for entry in entries:
        if not known.is_revoked(entry.key):
            for host in entry.hostnames:
                known.pinned.add(host, entry.key.get_name(), entry.key)
    return known


def _revoked_error(host: str, key: paramiko.PKey, known_hosts: Path) -> RevokedHostKeyError:
    return RevokedHostKeyError(
        f"host {host} offered {key.get_name()} key {fingerprint(key)}, which {known_hosts} marks "
        "@revoked: refused",
        host=host,
        received=fingerprint(key),
        expected=None,
    )


def fetch_host_key(host: str, port: int = DEFAULT_PORT, *, timeout: float = 10.0) -> paramiko.PKey:
    """The host key a server offers (an SSH handshake only, no authentication)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise SftpConnectionError(f"cannot reach {host}:{port}: {exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, OSError) as exc:
        raise SftpConnectionError(f"SSH handshake with {host}:{port} failed: {exc}") from None
    finally:
        transport.close()


def trust_host(
    host: str, port: int = DEFAULT_PORT, known_hosts: Path | str = DEFAULT_KNOWN_HOSTS
) -> TrustedHost:
    """Fetch `host`'s key and record it in `known_hosts` (replacing an earlier one for the host)."""
    path = Path(known_hosts).expanduser()
    key = fetch_host_key(host, port)
    entry = host_entry(host, port)
    known = read_known_hosts(path)
    if known.is_revoked(key):
        raise _revoked_error(entry, key, path)
    previous = known.pinned.lookup(entry)
    old = previous.get(key.get_name()) if previous is not None else None
    # Every other line (other hosts, markers, comments) is kept as it was.
    kept = [
        line
        for line in _lines(path)
        if line.lstrip().startswith(("@", "#")) or not _pins(line, entry)
    ]
    kept.append(f"{entry} {key.get_name()} {key.get_base64()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, ("\n".join(kept) + "\n").encode(), mode=0o644)
    log.info("trusted %s %s %s in %s", entry, key.get_name(), fingerprint(key), path)
    return TrustedHost(
        entry, key.get_name(), fingerprint(key), fingerprint(old) if old is not None else None
    )


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff")
    return [line for line in text.splitlines() if line.strip()]


def _pins(line: str, entry: str) -> bool:
    """Whether a known-hosts line pins a key for `entry` (plain or hashed host names)."""
    try:
        parsed = paramiko.hostkeys.HostKeyEntry.from_line(line.strip())
    except (paramiko.SSHException, ValueError):
        return False
    if parsed is None:
        return False
    keys = paramiko.HostKeys()
    for host in parsed.hostnames:
        keys.add(host, parsed.key.get_name(), parsed.key)
    return keys.lookup(entry) is not None


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse a host with no recorded key (or a revoked one), naming the key it offered."""

    def __init__(self, known_hosts: Path, known: KnownHosts | None = None) -> None:
        self._known_hosts = known_hosts
        self._known = known

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if self._known is not None and self._known.is_revoked(key):
            raise _revoked_error(hostname, key, self._known_hosts)
        raise UnknownHostKeyError(
            f"host {hostname} offered {key.get_name()} key {fingerprint(key)}; "
            f"expected: none recorded in {self._known_hosts}. Check the fingerprint, then run "
            f"`acoustic-pipelines sftp trust-host` to record it",
            host=hostname,
            received=fingerprint(key),
            expected=None,
        )


class SftpSession:
    """An authenticated SFTP session: downloads with verification, waiting for files."""

    def __init__(self, client: paramiko.SSHClient, sftp: paramiko.SFTPClient, name: str) -> None:
        self.client = client
        self.sftp = sftp
        self.name = name

    def __repr__(self) -> str:
        return f"SftpSession({self.name})"

    def close(self) -> None:
        """Close the SFTP channel and the SSH connection."""
        self.sftp.close()
        self.client.close()

    def stat(self, path: str) -> paramiko.SFTPAttributes:
        """The remote file's attributes; raises RemoteFileMissingError when it is absent."""
        try:
            return self.sftp.stat(path)
        except FileNotFoundError:
            raise RemoteFileMissingError(f"{self.name}: {path} does not exist") from None
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise RemoteFileMissingError(f"{self.name}: {path} does not exist") from None
            raise

    def wait_for(
        self,
        path: str,
        timeout: float,
        *,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> paramiko.SFTPAttributes:
        """Poll until `path` exists (backoff doubling up to `max_delay`); its attributes.

        Raises:
            WaitTimeoutError: The file is still absent after `timeout` seconds.
        """
        deadline = clock() + timeout
        delay = initial_delay
        polls = 0
        while True:
            polls += 1
            try:
                return self.stat(path)
            except RemoteFileMissingError:
                remaining = deadline - clock()
                if remaining <= 0:
                    raise WaitTimeoutError(
                        f"{self.name}: {path} did not appear within {timeout:g} s ({polls} checks)"
                    ) from None
                sleep(min(delay, remaining))
                delay = min(delay * 2, max_delay)

    def download(
        self, remote: str, local: Path, *, gzip_check: bool | None = None, retries: int = 2
    ) -> Download:
        """Download `remote` to `local`, verified; a failed check is retried `retries` times.

        The size must equal the remote `stat`; a `.gz` file (or `gzip_check=True`) must
        decompress to its end with a valid trailer. Only a verified file is renamed to `local`.

        Raises:
            RemoteFileMissingError: `remote` does not exist.
            IntegrityError: Every attempt failed verification; nothing is left at `local`.
        """
        local = Path(local)
        check = remote.endswith(".gz") if gzip_check is None else gzip_check
        local.parent.mkdir(parents=True, exist_ok=True)
        problems: list[str] = []
        for attempt in range(1, retries + 2):
            partial = local.with_name(f".{local.name}.{uuid.uuid4().hex}.part")
            started = time.perf_counter()
            try:
                size = self._fetch(remote, partial, gzip_check=check)
            except _VerificationError as exc:
                problems.append(f"attempt {attempt}: {exc}")
                log.warning(
                    "%s: %s failed verification (attempt %d): %s", self, remote, attempt, exc
                )
                continue
            seconds = time.perf_counter() - started
            os.replace(partial, local)
            return Download(remote, local, size, seconds, attempt)
        raise IntegrityError(
            f"{self.name}: {remote} failed verification on all {retries + 1} attempts, "
            f"not written to {local}: {'; '.join(problems)}"
        )

    def _fetch(self, remote: str, partial: Path, *, gzip_check: bool) -> int:
        """Stream `remote` into `partial`, then verify it; the byte count.

        The gzip check inflates the local copy once the transfer is done: done inline it held
        the GIL against paramiko's transport thread and cut the transfer rate by half or more.
        """
        expected = self.stat(remote).st_size
        received = 0
        try:
            with self.sftp.open(remote, "rb") as source, open(partial, "wb") as target:
                source.prefetch(expected, max_concurrent_requests=PREFETCH_REQUESTS)
                while chunk := source.read(READ_SIZE):
                    target.write(chunk)
                    received += len(chunk)
            if received != expected:
                raise _VerificationError(
                    f"received {received:,} bytes, the server lists {expected:,}"
                )
            if gzip_check:
                _verify_gzip(partial)
        except BaseException:
            with suppress(FileNotFoundError):
                partial.unlink()
            raise
        return received


def _verify_gzip(path: Path) -> None:
    """Inflate a local gzip file to its end (every member), checking CRCs and the trailer."""
    inflater = _GzipVerifier()
    with open(path, "rb") as stream:
        while chunk := stream.read(VERIFY_READ_SIZE):
            inflater.feed(chunk)
    inflater.finish()


class _VerificationError(Exception):
    """One attempt's download failed a check (internal: retried, then IntegrityError)."""


class _GzipVerifier:
    """Inflates a gzip stream (any number of members) to its end, checking CRC and length."""

    def __init__(self) -> None:
        self._inflater = isal_zlib.decompressobj(wbits=31)
        self._bytes = 0

    def feed(self, chunk: bytes) -> None:
        """Inflate the next compressed bytes (output discarded)."""
        self._bytes += len(chunk)
        data = chunk
        try:
            while data:
                self._inflater.decompress(data, 0)
                if not self._inflater.eof:
                    return
                data = self._inflater.unused_data
                if data:
                    self._inflater = isal_zlib.decompressobj(wbits=31)
        except isal_zlib.error as exc:
            raise _VerificationError(
                f"gzip data is corrupt near byte {self._bytes:,}: {exc}"
            ) from None

    def finish(self) -> None:
        """Require the stream to have ended with a complete gzip trailer."""
        if not self._inflater.eof:
            raise _VerificationError("gzip stream is truncated (no trailer at the end)")


@contextmanager
def connect_sftp(settings: SftpSettings, *, timeout: float = 15.0) -> Iterator[SftpSession]:
    """Open an SFTP session with the private key, the host key pinned from the known-hosts file.

    Raises:
        UnknownHostKeyError, ChangedHostKeyError: The host key is not the recorded one.
        RevokedHostKeyError: The host key is marked `@revoked` in the known-hosts file.
        SftpAuthenticationError: The key was refused.
        SftpConnectionError: The server could not be reached or the handshake failed.
    """
    name = f"{settings.user}@{host_entry(settings.host, settings.port)}"
    known_hosts = Path(settings.known_hosts).expanduser()
    client = paramiko.SSHClient()
    known = read_known_hosts(known_hosts)
    host_keys = client.get_host_keys()
    for host, keys in known.pinned.items():
        for kind, key in keys.items():
            host_keys.add(host, kind, key)
    client.set_missing_host_key_policy(_RefuseUnknownHost(known_hosts, known))
    try:
        client.connect(
            settings.host,
            port=settings.port,
            username=settings.user,
            key_filename=str(Path(settings.key_path).expanduser()),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        transport = client.get_transport()
        assert transport is not None
        sftp = paramiko.SFTPClient.from_transport(
            transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
        )
        assert sftp is not None
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise ChangedHostKeyError(
            f"host {name} offered {exc.key.get_name()} key {fingerprint(exc.key)}, but "
            f"{known_hosts} records {fingerprint(exc.expected_key)} for it: refused. If the "
            f"change is expected, check the new fingerprint and run `acoustic-pipelines sftp "
            f"trust-host`",
            host=exc.hostname,
            received=fingerprint(exc.key),
            expected=fingerprint(exc.expected_key),
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        raise SftpAuthenticationError(
            f"{name} refused the key {settings.key_path}: {exc}. Register its public key with "
            f"`acoustic-pipelines sftp setup` (updatePublicKeyForConnectUser)"
        ) from None
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise SftpConnectionError(f"cannot open an SFTP session to {name}: {exc}") from None
    session = SftpSession(client, sftp, name)
    try:
        yield session
    finally:
        session.close()
