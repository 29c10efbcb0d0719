"""Signals that could not be sent: `connect/rejected_signals/date=YYYY-MM-DD/part-00000.parquet`.

One row per (event, rule) refused, by the rules (a mapping failed or the signal broke Connect's
content rules) or by Connect (its batch was answered `BAD_USER_INPUT` or `FORBIDDEN`): `rule`,
`message_id` (join with `segment/raw_events` for the event), `signal_type`, `reason` and every
problem found. The reason is what the report counts by: the first problem's field path with list
indices dropped (`signalContent.orderedItems[].unitPrice`), the mapping error's type, or
Connect's error code. The partition is replaced whole by each run (`Lake.stage`/`Lake.commit`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from acoustic_pipelines.lake import Lake, StagedPartition

REJECTED_SIGNALS = "connect/rejected_signals"
DATA_FILE = "part-00000.parquet"
REJECTED_SIGNALS_SCHEMA = pa.schema(
    [
        ("rule", pa.string()),
        ("message_id", pa.string()),
        ("signal_type", pa.string()),
        ("reason", pa.string()),
        ("problems", pa.list_(pa.string())),
    ]
)
_INDEX = re.compile(r"\[\d+\]")
_ROWS_PER_GROUP = 10_000


@dataclass(frozen=True)
class Reject:
    """One refused (event, rule) with its reason and every problem."""

    rule: str
    message_id: str
    signal_type: str
    reason: str
    problems: tuple[str, ...]


def reason_of(problem: str) -> str:
    """The reason a problem counts under: its field path (indices dropped) or its error's type."""
    head = problem.split(": ", 1)[0]
    return _INDEX.sub("[]", head.removeprefix("signal.")) or "signal"


class RejectWriter:
    """Writes one day's rejects aside, in row groups; `commit` swaps the partition in."""

    def __init__(self, lake: Lake, day: date) -> None:
        self._lake = lake
        self._day = day
        self._stage = lake.stage(REJECTED_SIGNALS, day)
        self._staged: StagedPartition | None = None
        self._writer: pq.ParquetWriter | None = None
        self._rows: list[Reject] = []
        self.count = 0

    @property
    def uri(self) -> str:
        """Where the day's rejects are, as shown to users."""
        return self._lake.partition_uri(REJECTED_SIGNALS, self._day)

    def __enter__(self) -> RejectWriter:
        self._staged = self._stage.__enter__()
        self._writer = pq.ParquetWriter(
            self._staged.file(DATA_FILE),
            REJECTED_SIGNALS_SCHEMA,
            filesystem=self._lake.fs,
            compression="zstd",
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._stage.__exit__(exc_type, exc, tb)

    def add(self, rejects: Sequence[Reject]) -> None:
        """Queue rejects for writing."""
        self._rows.extend(rejects)
        self.count += len(rejects)
        if len(self._rows) >= _ROWS_PER_GROUP:
            self._flush()

    def commit(self, summary: dict[str, Any]) -> str:
        """Write what is queued and swap the partition in; its URI."""
        assert self._writer is not None and self._staged is not None, "not entered"
        self._flush()
        self._writer.close()
        self._writer = None
        self._lake.commit(self._staged, {"rejected": self.count, **summary})
        return self.uri

    def _flush(self) -> None:
        if not self._rows or self._writer is None:
            return
        columns: dict[str, list[Any]] = {
            "rule": [r.rule for r in self._rows],
            "message_id": [r.message_id for r in self._rows],
            "signal_type": [r.signal_type for r in self._rows],
            "reason": [r.reason for r in self._rows],
            "problems": [list(r.problems) for r in self._rows],
        }
        self._writer.write_table(pa.Table.from_pydict(columns, schema=REJECTED_SIGNALS_SCHEMA))
        self._rows = []
