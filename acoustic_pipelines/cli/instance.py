"""The Dagster instance in `DAGSTER_HOME`: installed and its storage created once, under a lock.

Dagster creates a SQLite instance's tables the first time a process opens it; several processes
opening a brand-new `DAGSTER_HOME` at once race on that (`table alembic_version already exists`,
`UNIQUE constraint failed: alembic_version.version_num`) and some of them crash. `prepare_instance`
does it once, with an exclusive lock, before anything launches runs: `make demo` / `make dev`
(through `acoustic-pipelines instance init`) and the demo call it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The instance settings this project ships (pools, run monitoring); copied into a new home.
SHIPPED_INSTANCE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "dagster.yaml"
INSTANCE_FILE = "dagster.yaml"
LOCK_FILE = ".acoustic-pipelines-init.lock"


class InstanceError(RuntimeError):
    """`DAGSTER_HOME` is unset or not a folder the instance can live in."""


def dagster_home() -> Path:
    """`$DAGSTER_HOME` as an absolute path.

    Raises:
        InstanceError: The variable is unset or empty.
    """
    raw = os.environ.get("DAGSTER_HOME", "").strip()
    if not raw:
        raise InstanceError("DAGSTER_HOME is not set: the folder of the Dagster instance")
    return Path(raw).expanduser().resolve()


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    with (home / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare_instance(home: Path, *, shipped: Path = SHIPPED_INSTANCE_CONFIG) -> bool:
    """Install `shipped` as `home`/dagster.yaml if there is none, and create the storage once.

    Safe to call from many processes at once: the first one creates the tables while the others
    wait on a file lock, then find them. An existing dagster.yaml is never overwritten.

    Returns:
        Whether the shipped instance config was installed by this call.
    """
    import dagster as dg  # the library itself never depends on Dagster

    home.mkdir(parents=True, exist_ok=True)
    with _locked(home):
        installed = False
        target = home / INSTANCE_FILE
        if not target.exists() and shipped.is_file():
            shutil.copyfile(shipped, target)
            installed = True
        with dg.DagsterInstance.from_config(str(home)):
            pass  # opening the instance creates (or migrates nothing of) its storage
    return installed


def add_instance_commands(commands: Any) -> None:
    """Register `instance init`, `check` and `release` on the command's subparsers."""
    instance = commands.add_parser(
        "instance", help="the Dagster instance in $DAGSTER_HOME: install and initialise it"
    )
    actions = instance.add_subparsers(required=True, metavar="ACTION")
    init = actions.add_parser(
        "init",
        help="install config/dagster.yaml into $DAGSTER_HOME (if it has none) and create the "
        "instance's storage once, before several runs open it at once",
    )
    init.set_defaults(run=_run_init)
    check = actions.add_parser(
        "check",
        help="list runs whose process is gone but which still hold a pool slot (exit code 1 if any)",
    )
    check.set_defaults(run=_run_check)
    release = actions.add_parser(
        "release",
        help="fail a run whose process is gone and free the pool slots it still holds "
        "(what the daemon's run monitoring does by itself under make dev)",
    )
    release.add_argument("run_id", metavar="RUN_ID", help="the run named by the blocked command")
    release.set_defaults(run=_run_release)


def _home_or_say(command: str) -> Path | None:
    """`$DAGSTER_HOME` for `instance COMMAND`, or None once the problem is printed."""
    try:
        return dagster_home()
    except InstanceError as exc:
        print(f"instance {command}: {exc}", file=sys.stderr)
        return None


def _run_init(_args: argparse.Namespace) -> int:
    home = _home_or_say("init")
    if home is None:
        return 2
    installed = prepare_instance(home)
    source = f"installed {SHIPPED_INSTANCE_CONFIG}" if installed else "kept its dagster.yaml"
    print(f"Dagster instance ready in {home} ({source})")
    return 0


def _run_release(args: argparse.Namespace) -> int:
    import dagster as dg

    from acoustic_pipelines.cli.pools import ReleaseError, release_run

    home = _home_or_say("release")
    if home is None:
        return 2
    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            done = release_run(instance, args.run_id)
        except ReleaseError as exc:
            print(f"instance release: {exc}", file=sys.stderr)
            return 1
    print(f"run {args.run_id}: " + "; ".join(done))
    return 0


def _run_check(_args: argparse.Namespace) -> int:
    import dagster as dg

    from acoustic_pipelines.cli.pools import dead_slot_holders

    home = _home_or_say("check")
    if home is None:
        return 2
    with dg.DagsterInstance.from_config(str(home)) as instance:
        holders = dead_slot_holders(instance)
    for holder in holders:
        print(holder.explain())
    if not holders:
        print(f"no pool slot of {home} is held by a dead run")
    return 1 if holders else 0
