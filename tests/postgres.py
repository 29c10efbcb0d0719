"""A real PostgreSQL server for the tests: the `pgserver` wheel's binaries, started in a temporary
folder and listening on a Unix socket only (no network), stopped when the session ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a fresh PostgreSQL server (`postgresql://postgres:@/postgres?host=<socket dir>`)."""
    import pgserver

    server = pgserver.get_server(Path(tmp_path_factory.mktemp("postgres")), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def new_database(url: str, name: str) -> str:
    """Create an empty database `name` on the server of `url`; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.replace("/postgres?", f"/{name}?", 1)


#: The two engines every ledger runs on: `@pytest.mark.parametrize("engine", ENGINES)`.
ENGINES = ("sqlite", "postgres")


def ledger_location(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty ledger database of `engine`: a SQLite file path or a PostgreSQL URL."""
    if engine == "sqlite":
        return str(tmp_path / "ledger" / "ledger.sqlite")
    server = request.getfixturevalue("postgres_url")
    return new_database(server, f"ledger_{uuid.uuid4().hex[:16]}")
