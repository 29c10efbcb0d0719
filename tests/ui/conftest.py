"""One webserver + daemon for the UI tests: the shipped instance config in a temporary
DAGSTER_HOME, the sandbox as `acoustic-pipelines sandbox` serves it, sample days in an archive."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from acoustic_pipelines import settings
from acoustic_pipelines.cli.instance import prepare_instance
from acoustic_pipelines.config.loading import load_config
from acoustic_pipelines.sandbox.environment import sandbox_environment
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location
from tests.ui.harness import REPO_ROOT, DagsterUI, serve_dagster_ui

#: A day whose signal push the dead-run test kills (3 createSignals batches of 500 or more).
KILL_DAY = date(2026, 11, 10)
#: Ranges the backfill tests use, each its own days: the sandbox and ledgers persist across tests.
FITTING_RANGE = [date(2026, 11, 20) + timedelta(days=n) for n in range(3)]
OVER_QUOTA_RANGE = [date(2026, 11, 24) + timedelta(days=n) for n in range(3)]
JOB_RANGE = [date(2026, 11, 14) + timedelta(days=n) for n in range(3)]
DEFAULT_CONFIG = REPO_ROOT / settings.DEFAULT_CONFIG
#: The variable naming the warehouse of the shipped config's `connections:` (the sandbox's sample).
WAREHOUSE_ENV = "ACOUSTIC_PIPELINES_WAREHOUSE"


@dataclass
class UIProject:
    """The running UI and the project folders it works on."""

    ui: DagsterUI
    root: Path
    lake: Path
    config_path: Path

    @property
    def ledger_path(self) -> Path:
        return self.lake / settings.EXPORT_LEDGER_FILE

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @contextmanager
    def pipeline_config(self, edit: Callable[[dict[str, Any]], None]) -> Iterator[None]:
        """Runs launched inside the block read the shipped config changed by `edit`."""
        original = self.config_path.read_text()
        raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
        edit(raw)
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        try:
            yield
        finally:
            self.config_path.write_text(original)


def _write_days(archive: Path) -> None:
    location = open_location(str(archive))
    write_sample_archive(location, KILL_DAY, events=4_000, seed=10)
    for day in [*FITTING_RANGE, *OVER_QUOTA_RANGE, *JOB_RANGE]:
        write_sample_archive(location, day, events=300, seed=day.day)


@pytest.fixture(scope="session")
def ui_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIProject]:
    """The sandbox, then dagster-webserver and dagster-daemon over a brand-new DAGSTER_HOME."""
    root = tmp_path_factory.mktemp("ui")
    archive, lake, home = root / "archive", root / "lake", root / "dagster_home"
    config_path = root / "pipeline.yaml"
    config_path.write_text(DEFAULT_CONFIG.read_text())
    _write_days(archive)
    prepare_instance(home)  # the shipped config/dagster.yaml, as make demo / make dev install it
    config = load_config(config_path)
    with ExitStack() as stack:
        sandbox = stack.enter_context(
            sandbox_environment(
                config, folder=root / "sandbox", export_delay=1.0, archive=str(archive)
            )
        )
        environment = {
            **sandbox,
            settings.ARCHIVE_ENV: str(archive),
            settings.LAKE_ENV: str(lake),
            settings.CONFIG_ENV: str(config_path),
        }
        ui = stack.enter_context(
            serve_dagster_ui(
                home=home,
                environment=environment,
                connect_url=sandbox[settings.ACOUSTIC_CONNECT_ENDPOINT_ENV],
                logs=root / "logs",
            )
        )
        yield UIProject(ui=ui, root=root, lake=lake, config_path=config_path)


def exports_limits(**limits: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of the pipeline config: `exports.limits` and no reserve."""

    def edit(raw: dict[str, Any]) -> None:
        exports = copy.deepcopy(raw.get("exports") or {})
        exports["limits"] = {**exports.get("limits", {}), **limits}
        exports["reserve"] = {}
        raw["exports"] = exports

    return edit


def add_orders(project: UIProject, prefix: str, *, count: int, guests: int = 0) -> None:
    """New orders in the sample warehouse, copies of existing ones under new ids: `count` of
    customers and `guests` guest checkouts (no customer id: Segment refuses their track call),
    so a sync has something to send whichever syncs ran before."""
    copy_of = "SELECT * REPLACE (? || order_id AS order_id{guest}) FROM orders "
    with duckdb.connect(project.ui.environment[WAREHOUSE_ENV]) as con:
        for rows, guest in ((count, ""), (guests, ", NULL AS customer_id")):
            con.execute(
                f"INSERT INTO orders {copy_of.format(guest=guest)} "
                "WHERE customer_id IS NOT NULL ORDER BY order_id LIMIT ?",
                [f"{prefix}{'guest-' if guest else ''}", rows],
            )


def change_every_customer(project: UIProject) -> int:
    """Move every customer's churn score in the sample warehouse; the number of customers."""
    with duckdb.connect(project.ui.environment[WAREHOUSE_ENV]) as con:
        con.execute("UPDATE customers SET churn_score = coalesce(churn_score, 0) + 0.5")
        (customers,) = con.execute("SELECT count(*) FROM customers").fetchone()
    return customers
