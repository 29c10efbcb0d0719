"""The SFTP client over real SSH on 127.0.0.1 against the sandbox server: Ed25519 keys in OpenSSH
format, host keys pinned (unknown or changed keys refused with both fingerprints, recorded only by
`trust_host`), verified downloads (truncated or corrupt gzip retried and never landed), waiting with
capped backoff, and the `sftp setup` / `sftp trust-host` commands."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest

from acoustic_pipelines import settings
from acoustic_pipelines.cli.main import main
from acoustic_pipelines.connect.sftp import (
    ChangedHostKeyError,
    IntegrityError,
    RemoteFileMissingError,
    RevokedHostKeyError,
    SftpSession,
    SftpSettings,
    UnknownHostKeyError,
    WaitTimeoutError,
    connect_sftp,
    fingerprint,
    generate_ed25519_key,
    trust_host,
)
from acoustic_pipelines.sandbox.connect.server import ConnectSandbox, serve_connect
from acoustic_pipelines.sandbox.sftp_server import SftpSandbox, client_settings, serve_sftp

KEY = "test-api-key"
EXPORTS = "Export/Signals"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ConnectSandbox, SftpSandbox]]:
    with (
        serve_connect(folder=tmp_path / "sandbox", api_key=KEY) as connect,
        serve_sftp(sandbox=connect) as server,
    ):
        yield connect, server


@pytest.fixture
def connect(served: tuple[ConnectSandbox, SftpSandbox]) -> ConnectSandbox:
    return served[0]


@pytest.fixture
def server(served: tuple[ConnectSandbox, SftpSandbox]) -> SftpSandbox:
    return served[1]


@pytest.fixture
def login(connect: ConnectSandbox, server: SftpSandbox, tmp_path: Path) -> SftpSettings:
    return client_settings(sandbox=connect, sftp=server, folder=tmp_path / "client")


@pytest.fixture
def session(login: SftpSettings) -> Iterator[SftpSession]:
    with connect_sftp(login) as opened:
        yield opened


def put_export(connect: ConnectSandbox, name: str, data: bytes) -> str:
    target = connect.subscription_folder / EXPORTS / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return f"{EXPORTS}/{name}"


# --- keys ---------------------------------------------------------------------------------


def test_generated_key_is_openssh_ed25519_with_mode_0600(tmp_path: Path) -> None:
    key = generate_ed25519_key(tmp_path / "ssh" / "key", comment="Acoustic Connect key")
    assert stat.S_IMODE(key.private_path.stat().st_mode) == 0o600
    assert key.private_path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    loaded = paramiko.Ed25519Key(filename=str(key.private_path))
    kind, blob, comment = key.public_line.split(" ", 2)
    assert (kind, comment) == ("ssh-ed25519", "Acoustic Connect key")
    assert blob.startswith("AAAAC3NzaC1lZDI1NTE5") and blob == loaded.get_base64()
    assert key.public_path.read_text() == key.public_line + "\n"
    assert key.fingerprint == fingerprint(loaded)
    if shutil.which("ssh-keygen"):
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(key.private_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert key.fingerprint in listed.stdout


def test_key_generation_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    first = generate_ed25519_key(tmp_path / "key")
    with pytest.raises(FileExistsError, match="exists"):
        generate_ed25519_key(tmp_path / "key")
    second = generate_ed25519_key(tmp_path / "key", force=True)
    assert second.public_line != first.public_line
    assert stat.S_IMODE(second.private_path.stat().st_mode) == 0o600


# --- host keys ----------------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint(
    login: SftpSettings, server: SftpSandbox, tmp_path: Path
) -> None:
    empty = replace(login, known_hosts=tmp_path / "none" / "known_hosts")
    with pytest.raises(UnknownHostKeyError) as refused, connect_sftp(empty):
        pass
    assert server.host_key_fingerprint in str(refused.value)
    assert "none recorded" in str(refused.value) and "trust-host" in str(refused.value)
    assert not empty.known_hosts.exists()  # never auto-accepted


def test_changed_host_key_is_refused_with_both_fingerprints(
    login: SftpSettings, server: SftpSandbox, tmp_path: Path
) -> None:
    impostor = generate_ed25519_key(tmp_path / "impostor")
    kind, blob = impostor.public_line.split()[:2]
    login.known_hosts.write_text(f"[{server.host}]:{server.port} {kind} {blob}\n")
    with pytest.raises(ChangedHostKeyError) as refused, connect_sftp(login):
        pass
    message = str(refused.value)
    assert server.host_key_fingerprint in message and impostor.fingerprint in message
    assert refused.value.expected == impostor.fingerprint


def test_known_hosts_marker_lines_and_a_bom_are_understood(
    login: SftpSettings, server: SftpSandbox, tmp_path: Path
) -> None:
    ca = generate_ed25519_key(tmp_path / "ca").public_line.split()[:2]
    impostor = generate_ed25519_key(tmp_path / "impostor").public_line.split()[:2]
    pinned = server.known_hosts_line.strip()
    login.known_hosts.write_text(
        "\ufeff# a typical ~/.ssh/known_hosts\n"
        f"@cert-authority *.example.com {ca[0]} {ca[1]}\n"
        f"@revoked * {impostor[0]} {impostor[1]}\n"
        f"{pinned}\n",
        encoding="utf-8",
    )
    with connect_sftp(login) as opened:  # the right pinned key still works
        assert opened.sftp.listdir("/") is not None
    again = trust_host(server.host, server.port, login.known_hosts)  # markers kept as they were
    assert again.previous_fingerprint == server.host_key_fingerprint
    lines = login.known_hosts.read_text().splitlines()
    assert [line.split()[0] for line in lines if line.startswith("@")] == [
        "@cert-authority",
        "@revoked",
    ]
    assert sum(line.split()[0] == pinned.split()[0] for line in lines) == 1

    host_key = server.known_hosts_line.split()[1:3]
    with login.known_hosts.open("a") as out:  # the server's own key revoked: refused, pinned or not
        out.write(f"@revoked [{server.host}]:{server.port} {host_key[0]} {host_key[1]}\n")
    with pytest.raises(RevokedHostKeyError, match="@revoked") as refused, connect_sftp(login):
        pass
    assert refused.value.received == server.host_key_fingerprint
    with pytest.raises(RevokedHostKeyError):
        trust_host(server.host, server.port, login.known_hosts)


def test_trust_host_records_the_key_then_login_works(
    login: SftpSettings, server: SftpSandbox, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "fresh" / "known_hosts"
    trusted = trust_host(server.host, server.port, known_hosts)
    assert trusted.fingerprint == server.host_key_fingerprint
    assert trusted.previous_fingerprint is None
    assert known_hosts.read_text().split() == server.known_hosts_line.split()
    with connect_sftp(replace(login, known_hosts=known_hosts)) as session:
        assert session.sftp.listdir("/") is not None
    again = trust_host(server.host, server.port, known_hosts)
    assert again.previous_fingerprint == server.host_key_fingerprint


# --- downloads ----------------------------------------------------------------------------


def test_download_of_an_export_file_is_verified_and_landed(
    connect: ConnectSandbox, session: SftpSession, tmp_path: Path
) -> None:
    data = gzip.compress(os.urandom(300_000) + b"\n" * 100_000)
    remote = put_export(connect, "ok.csv.gz", data)
    done = session.download(remote, tmp_path / "out" / "ok.csv.gz")
    assert done.local.read_bytes() == data
    assert (done.size, done.attempts) == (len(data), 1)
    assert os.listdir(tmp_path / "out") == ["ok.csv.gz"]


def test_download_of_a_multi_member_gzip_passes(
    connect: ConnectSandbox, session: SftpSession, tmp_path: Path
) -> None:
    data = gzip.compress(b"a,b\n") + gzip.compress(b"1,2\n")
    remote = put_export(connect, "two.csv.gz", data)
    assert session.download(remote, tmp_path / "two.csv.gz").size == len(data)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:-4], id="no-trailer-size"),
        pytest.param(
            lambda data: data[:100] + bytes(b ^ 0xFF for b in data[100:200]) + data[200:],
            id="corrupt",
        ),
    ],
)
def test_damaged_gzip_is_retried_then_refused_and_never_landed(
    connect: ConnectSandbox, session: SftpSession, tmp_path: Path, damage
) -> None:
    good = gzip.compress(os.urandom(50_000))
    remote = put_export(connect, "bad.csv.gz", damage(good))
    target = tmp_path / "out" / "bad.csv.gz"
    with pytest.raises(IntegrityError, match="all 3 attempts") as refused:
        session.download(remote, target, retries=2)
    assert "attempt 3" in str(refused.value)
    assert not target.exists()
    assert os.listdir(target.parent) == []  # no partial file left behind


def test_missing_file_is_reported(session: SftpSession, tmp_path: Path) -> None:
    with pytest.raises(RemoteFileMissingError, match="does not exist"):
        session.download(f"{EXPORTS}/absent.csv.gz", tmp_path / "absent.csv.gz")


def test_wait_for_times_out_with_capped_backoff(session: SftpSession) -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    with pytest.raises(WaitTimeoutError, match="did not appear within 20 s"):
        session.wait_for(
            f"{EXPORTS}/late.csv.gz",
            20,
            initial_delay=1,
            max_delay=4,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert waits[:5] == [1, 2, 4, 4, 4] and sum(waits) == 20


def test_wait_for_returns_when_the_file_appears(
    connect: ConnectSandbox, session: SftpSession
) -> None:
    timer = threading.Timer(0.3, put_export, (connect, "soon.csv.gz", gzip.compress(b"x")))
    timer.start()
    try:
        attributes = session.wait_for(f"{EXPORTS}/soon.csv.gz", 10, initial_delay=0.05)
    finally:
        timer.join()
    assert attributes.st_size == len(gzip.compress(b"x"))


# --- CLI ----------------------------------------------------------------------------------


def test_cli_setup_generates_and_registers_the_key(
    connect: ConnectSandbox, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(settings.ACOUSTIC_API_KEY_ENV, KEY)
    monkeypatch.setenv(settings.ACOUSTIC_CONNECT_ENDPOINT_ENV, connect.endpoint)
    key = tmp_path / "cli" / "key"
    assert main(["sftp", "setup", "--key", str(key), "--comment", "ops key"]) == 0
    out = capsys.readouterr().out
    public = key.with_name("key.pub").read_text().strip()
    assert public.endswith(" ops key") and public in out
    assert connect.store.public_key(connect.sftp_user) == public
    assert f"export {settings.ACOUSTIC_SFTP_KEY_PATH_ENV}={key}" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert main(["sftp", "setup", "--key", str(key)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["sftp", "setup", "--key", str(key), "--force"]) == 0
    assert connect.store.public_key(connect.sftp_user) != public


def test_cli_trust_host_records_and_prints_the_fingerprint(
    server: SftpSandbox, tmp_path: Path, capsys
) -> None:
    known_hosts = tmp_path / "known_hosts"
    args = ["sftp", "trust-host", server.host, "--port", str(server.port)]
    assert main([*args, "--known-hosts", str(known_hosts)]) == 0
    assert server.host_key_fingerprint in capsys.readouterr().out
    assert known_hosts.read_text().split() == server.known_hosts_line.split()
