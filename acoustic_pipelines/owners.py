"""Which process owns a leftover: owner tags on scratch and staging names, and their clean-up.

A run names what it leaves on disk while it works (scratch folders in the temp directory, staged
partitions in the lake) with its owner tag, `<pid>@<host>`, always at the end of the name. A
later run on the same host can then tell a dead owner's leftovers (a process killed with SIGKILL
never runs its clean-up) from those of a live run, and removes only the former. Another host's
leftovers are never judged by pid; they are removed once older than `FOREIGN_LEFTOVER_SECONDS`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FOREIGN_LEFTOVER_SECONDS = 2 * 24 * 3600.0
_TAG = re.compile(r"(?:^|-)(?P<pid>\d+)@(?P<host>[A-Za-z0-9_.-]+)$")

log = logging.getLogger(__name__)


def host_name() -> str:
    """This machine's name as owner tags write it (characters outside `[A-Za-z0-9_.-]` become `_`)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "localhost"


def owner_tag() -> str:
    """This process's owner tag: `<pid>@<host>`."""
    return f"{os.getpid()}@{host_name()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def owner_is_dead(name: str) -> bool | None:
    """Whether the owner tagged in `name` is a dead process on this host; None when unknown.

    None: the name holds no tag, or the owner runs on another host.
    """
    match = _TAG.search(name)
    if match is None or match.group("host") != host_name():
        return None
    return not pid_alive(int(match.group("pid")))


@contextmanager
def owned_scratch(prefix: str, parent: str | None = None) -> Iterator[Path]:
    """A scratch folder `<prefix>XXXX-<pid>@<host>` in `parent` (the temp dir by default).

    Dead owners' folders with the same prefix are removed first; this one is removed on exit,
    whether the block succeeded or failed.
    """
    folder = Path(parent or tempfile.gettempdir())
    sweep_scratch(prefix, folder)
    with tempfile.TemporaryDirectory(prefix=prefix, suffix=f"-{owner_tag()}", dir=folder) as path:
        yield Path(path)


def sweep_scratch(prefix: str, folder: Path) -> list[Path]:
    """Remove `<prefix>*` folders of dead owners on this host in `folder`; the removed paths."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir():
            continue
        if owner_is_dead(entry.name):
            log.warning("removing scratch %s left by a dead process", entry)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def leftover_removable(name: str, mtime_seconds: float | None) -> bool:
    """Whether a leftover named `name` may be removed by another run.

    Yes when its owner is a dead process on this host, when it carries no owner tag (written
    before tags existed), or when another host's leftover is older than
    `FOREIGN_LEFTOVER_SECONDS`.
    """
    if _TAG.search(name) is None:
        return True
    dead = owner_is_dead(name)
    if dead is not None:
        return dead
    return mtime_seconds is not None and time.time() - mtime_seconds > FOREIGN_LEFTOVER_SECONDS
