"""The sandbox SFTP server over real SSH on 127.0.0.1 (reference §5): its own host key, public-key
login against the key registered through `updatePublicKeyForConnectUser`, each user confined to
`sub_<subscriptionId>`, exports read-only, the §5.3 directory limits on uploads."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest

from acoustic_pipelines import settings
from acoustic_pipelines.config.loading import load_config
from acoustic_pipelines.connect.client import ConnectClient
from acoustic_pipelines.connect.sftp import (
    SftpAuthenticationError,
    SftpSettings,
    connect_sftp,
    generate_ed25519_key,
)
from acoustic_pipelines.sandbox.connect.server import ConnectSandbox, serve_connect
from acoustic_pipelines.sandbox.environment import sandbox_environment
from acoustic_pipelines.sandbox.sftp_server import (
    DirectoryLimits,
    SftpSandbox,
    client_settings,
    serve_sftp,
)

KEY = "test-api-key"


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[ConnectSandbox]:
    with serve_connect(folder=tmp_path / "sandbox", api_key=KEY) as running:
        yield running


@pytest.fixture
def server(connect: ConnectSandbox) -> Iterator[SftpSandbox]:
    with serve_sftp(sandbox=connect, limits=DirectoryLimits(max_files=4, max_bytes=10_000)) as s:
        yield s


@pytest.fixture
def login(connect: ConnectSandbox, server: SftpSandbox, tmp_path: Path) -> SftpSettings:
    return client_settings(sandbox=connect, sftp=server, folder=tmp_path / "client")


@pytest.fixture
def sftp(login: SftpSettings) -> Iterator[paramiko.SFTPClient]:
    """The logged-in user's SFTP client (the protocol as the server answers it)."""
    with connect_sftp(login) as session:
        yield session.sftp


def test_host_key_is_generated_once_per_sandbox_folder(connect: ConnectSandbox) -> None:
    with serve_sftp(sandbox=connect) as first, serve_sftp(sandbox=connect) as second:
        assert first.host_key_fingerprint == second.host_key_fingerprint
        assert first.port != second.port
        assert first.known_hosts_line.startswith(f"[127.0.0.1]:{first.port} ssh-ed25519 AAAA")


def test_registered_key_logs_in_and_sees_its_subscription_folder(
    connect: ConnectSandbox, sftp: paramiko.SFTPClient
) -> None:
    (connect.subscription_folder / "hello.txt").write_text("hi")
    assert "hello.txt" in sftp.listdir("/")
    assert sftp.normalize(".") == "/"
    assert connect.store.public_key(connect.sftp_user).startswith("ssh-ed25519 AAAA")


def test_unregistered_key_and_other_user_are_refused(
    login: SftpSettings, tmp_path: Path, connect: ConnectSandbox
) -> None:
    other = generate_ed25519_key(tmp_path / "other")
    with (
        pytest.raises(SftpAuthenticationError, match="refused the key"),
        connect_sftp(replace(login, key_path=other.private_path)),
    ):
        pass
    with (
        pytest.raises(SftpAuthenticationError),
        connect_sftp(replace(login, user="someone.else@example.com")),
    ):
        pass
    # Registering the other key replaces the first one (reference §8 #19).
    with ConnectClient(api_key=KEY, endpoint=connect.endpoint) as client:
        client.update_public_key(other.public_line)
    with connect_sftp(replace(login, key_path=other.private_path)) as session:
        session.sftp.listdir("/")
    with pytest.raises(SftpAuthenticationError), connect_sftp(login):
        pass


@pytest.mark.parametrize("path", ["/..", "../..", "/Export/../../..", "../sub_0000000002"])
def test_paths_above_the_subscription_folder_are_refused(
    sftp: paramiko.SFTPClient, path: str
) -> None:
    with pytest.raises(PermissionError):
        sftp.listdir(path)


def test_symlink_out_of_the_folder_is_refused(
    connect: ConnectSandbox, sftp: paramiko.SFTPClient, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path, connect.subscription_folder / "link")
    with pytest.raises(PermissionError):
        sftp.open("/link/secret.txt").read()


def test_exports_are_read_only(connect: ConnectSandbox, sftp: paramiko.SFTPClient) -> None:
    exports = connect.subscription_folder / "Export" / "Signals"
    exports.mkdir(parents=True)
    (exports / "a.csv.gz").write_bytes(gzip.compress(b"HEADER\n"))
    assert gzip.decompress(sftp.open("/Export/Signals/a.csv.gz").read()) == b"HEADER\n"
    writes = [
        lambda: sftp.open("/Export/Signals/new.csv", "wb"),
        lambda: sftp.open("/Export/Signals/a.csv.gz", "r+"),
        lambda: sftp.remove("/Export/Signals/a.csv.gz"),
        lambda: sftp.rename("/Export/Signals/a.csv.gz", "/a.csv.gz"),
        lambda: sftp.mkdir("/Export/Mine"),
        lambda: sftp.rmdir("/Export/Signals"),
    ]
    for write in writes:
        with pytest.raises(PermissionError):
            write()
    assert (connect.subscription_folder / "Export" / "Signals" / "a.csv.gz").exists()


def test_uploads_elsewhere_within_the_directory_limits(
    connect: ConnectSandbox, sftp: paramiko.SFTPClient
) -> None:
    sftp.mkdir("/Imports")
    for index in range(4):
        with sftp.open(f"/Imports/f{index}.csv", "wb") as handle:
            handle.write(b"x" * 100)
    assert sorted(sftp.listdir("/Imports")) == [f"f{i}.csv" for i in range(4)]
    with pytest.raises(OSError):  # a 5th file: over max_files
        sftp.open("/Imports/f4.csv", "wb")
    sftp.remove("/Imports/f3.csv")
    with pytest.raises(OSError), sftp.open("/Imports/big.csv", "wb") as handle:
        handle.write(b"y" * 20_000)  # over max_bytes
    sftp.rename("/Imports/f0.csv", "/Imports/renamed.csv")
    assert (connect.subscription_folder / "Imports" / "renamed.csv").read_bytes() == b"x" * 100


def test_an_export_job_file_is_served(connect: ConnectSandbox, sftp: paramiko.SFTPClient) -> None:
    with ConnectClient(api_key=KEY, endpoint=connect.endpoint) as client:
        job = client.export_signals(
            job_name="sftp-test",
            signal_types=["pageView"],
            start="2026-01-01T00:00:00.000Z",
            end="2026-01-01T23:59:59.999Z",
        )
    connect.run_export_jobs()
    text = gzip.decompress(sftp.open(job.path).read()).decode()
    assert text.splitlines()[0].startswith("DATASET_ID,")


def test_sandbox_environment_gives_working_sftp_settings(tmp_path: Path) -> None:
    config = load_config(None)
    with sandbox_environment(config, folder=tmp_path) as environment:
        login = SftpSettings(
            host=environment[settings.ACOUSTIC_SFTP_HOST_ENV],
            port=int(environment[settings.ACOUSTIC_SFTP_PORT_ENV]),
            user=environment[settings.ACOUSTIC_SFTP_USER_ENV],
            key_path=Path(environment[settings.ACOUSTIC_SFTP_KEY_PATH_ENV]),
            known_hosts=Path(environment[settings.ACOUSTIC_SFTP_KNOWN_HOSTS_ENV]),
        )
        with connect_sftp(login) as session:
            assert session.sftp.normalize("/") == "/"
