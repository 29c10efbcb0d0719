"""The ledger of one day's `createSignals` pushes: each batch, its signals' keys, ids and status.

A signal's idempotency key is (message_id, rule): one Segment event gives at most one signal per
rule. The ledger lives in the lake at `connect/signal_pushes/date=YYYY-MM-DD/` and is written in
place, one object per batch, so it survives a run killed at any point (never through
`Lake.stage`/`Lake.commit`, and never by appending):

- `batches/batch-<run>-<nnnnnn>.json`: one JSON object per batch, written with status `sending`
  before its call and rewritten once the call ended: `sent` (with the returned signal ids),
  `failed` (Connect answered with an error, so nothing was stored; the error, never the API key)
  or `unknown` (no answer came back after the request may have reached Connect). Keys:
  `run`, `batch`, `status`, `keys` ([message_id, rule] pairs), `signal_types`, `signal_ids`,
  `error` ({code, http_status, message} or null), `resend` (true when the batch resends signals
  of unknown outcome: `resend_unknown`), `written_at`.
- `ledger.parquet`: every batch entry consolidated at the end of a completed run, one row per
  signal and batch: message_id, rule, signal_type, batch, signal_id (null unless sent), status.
- `_SUCCESS`: the run's summary; removed while a run is under way, so the consolidated files
  read as current only when it is there.

Reading it back (:meth:`PushLedger.load`): a key is `sent` when any entry says so; otherwise it
is of unknown outcome when an entry was left `sending` (the run died mid-call) or `unknown`;
keys only ever `failed` were not stored and may be sent again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from acoustic_pipelines.lake import Lake
from acoustic_pipelines.storage import StorageError

SIGNAL_PUSHES = "connect/signal_pushes"
BATCHES_FOLDER = "batches"
LEDGER_FILE = "ledger.parquet"

SENDING, SENT, FAILED, UNKNOWN = "sending", "sent", "failed", "unknown"
STATUSES = (SENDING, SENT, FAILED, UNKNOWN)

LEDGER_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("rule", pa.string()),
        ("signal_type", pa.string()),
        ("batch", pa.string()),
        ("signal_id", pa.string()),
        ("status", pa.string()),
    ]
)
_ROWS_PER_GROUP = 50_000
_KEY_SEPARATOR = "\x1f"

log = logging.getLogger(__name__)


class LedgerError(StorageError):
    """A ledger entry cannot be read back: the file and what is wrong with it."""


def signal_key(message_id: str, rule: str) -> str:
    """The idempotency key of a signal, as held in memory: message id and rule."""
    return f"{message_id}{_KEY_SEPARATOR}{rule}"


def new_run_id() -> str:
    """A run id that sorts in time order: `20261120T101500123456Z-1a2b3c`."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class BatchEntry:
    """One batch as the ledger records it."""

    run: str
    number: int
    status: str
    keys: tuple[tuple[str, str], ...]
    signal_types: tuple[str, ...]
    signal_ids: tuple[str, ...] = ()
    error: dict[str, Any] | None = None
    written_at: str = ""
    resend: bool = False

    @property
    def name(self) -> str:
        """The batch's name, also its file name without `.json`."""
        return f"batch-{self.run}-{self.number:06d}"

    def with_status(
        self, status: str, *, signal_ids: Sequence[str] = (), error: dict[str, Any] | None = None
    ) -> BatchEntry:
        """The same batch after its call: a new status, its signal ids or its error."""
        return replace(self, status=status, signal_ids=tuple(signal_ids), error=error)

    def to_json(self) -> bytes:
        """The entry's file content."""
        return json.dumps(
            {
                "run": self.run,
                "batch": self.number,
                "status": self.status,
                "keys": [list(k) for k in self.keys],
                "signal_types": list(self.signal_types),
                "signal_ids": list(self.signal_ids),
                "error": self.error,
                "resend": self.resend,
                "written_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> BatchEntry:
        """Read an entry back; `where` names the file in the error."""
        try:
            raw = json.loads(data)
            entry = cls(
                run=str(raw["run"]),
                number=int(raw["batch"]),
                status=str(raw["status"]),
                keys=tuple((str(m), str(r)) for m, r in raw["keys"]),
                signal_types=tuple(str(t) for t in raw["signal_types"]),
                signal_ids=tuple(str(i) for i in raw.get("signal_ids") or ()),
                error=raw.get("error"),
                written_at=str(raw.get("written_at", "")),
                resend=bool(raw.get("resend", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"ledger entry {where} cannot be read: {exc!r}") from None
        if entry.status not in STATUSES or len(entry.signal_types) != len(entry.keys):
            raise LedgerError(
                f"ledger entry {where}: status {entry.status!r} (expected one of "
                f"{', '.join(STATUSES)}), {len(entry.keys)} keys for "
                f"{len(entry.signal_types)} signal types"
            )
        return entry


@dataclass
class LedgerState:
    """What earlier runs did with each key: sent, or of unknown outcome (never sent again)."""

    sent: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    batches: Counter[str] = field(default_factory=Counter)

    def add(self, entry: BatchEntry) -> None:
        """Take one entry into account (entries are read oldest first)."""
        self.batches[entry.status] += 1
        keys = [signal_key(m, r) for m, r in entry.keys]
        if entry.status == SENT:
            self.sent.update(keys)
            self.unknown.difference_update(keys)
        elif entry.status in (SENDING, UNKNOWN):
            self.unknown.update(k for k in keys if k not in self.sent)

    def status_of(self, key: str) -> str | None:
        """`sent`, `unknown`, or None when the key may be sent."""
        if key in self.sent:
            return SENT
        return UNKNOWN if key in self.unknown else None

    @property
    def batches_kept(self) -> int:
        """Earlier batches whose signals are not sent again: sent, or of unknown outcome."""
        return self.batches[SENT] + self.batches[SENDING] + self.batches[UNKNOWN]


class PushLedger:
    """The ledger folder of one day: read earlier entries, record this run's, consolidate."""

    def __init__(self, lake: Lake, day: date, run: str | None = None) -> None:
        self.lake = lake
        self.day = day
        self.run = run or new_run_id()

    @property
    def uri(self) -> str:
        """Where the ledger is, as shown to users."""
        return self.lake.partition_uri(SIGNAL_PUSHES, self.day)

    def entry_names(self) -> list[str]:
        """The paths of every batch entry, oldest run first."""
        folder = f"{self.lake.partition_path(SIGNAL_PUSHES, self.day)}/{BATCHES_FOLDER}"
        selector = pafs.FileSelector(folder, allow_not_found=True)
        names = [
            i.path
            for i in self.lake.fs.get_file_info(selector)
            if i.type == pafs.FileType.File
            and i.base_name.startswith("batch-")
            and i.base_name.endswith(".json")
        ]
        return sorted(names)

    def entries(self) -> Iterator[BatchEntry]:
        """Every batch entry, oldest run first."""
        for path in self.entry_names():
            with self.lake.fs.open_input_stream(path) as stream:
                yield BatchEntry.from_json(stream.read(), self.lake.location.uri_of(path))

    def load(self) -> LedgerState:
        """What earlier runs sent or left of unknown outcome."""
        state = LedgerState()
        for entry in self.entries():
            state.add(entry)
        return state

    def begin(self) -> None:
        """Mark the consolidated files as out of date while this run writes entries."""
        self.lake.unmark(SIGNAL_PUSHES, self.day)

    def record(self, entry: BatchEntry) -> None:
        """Write (or rewrite) one batch entry: one object, replaced whole."""
        name = f"{BATCHES_FOLDER}/{entry.name}.json"
        self.lake.write_file(SIGNAL_PUSHES, self.day, name, entry.to_json())

    def start_batch(
        self,
        number: int,
        keys: Sequence[tuple[str, str]],
        types: Sequence[str],
        *,
        resend: bool = False,
    ) -> BatchEntry:
        """Record a batch as `sending`, before its call; the entry to finish afterwards."""
        entry = BatchEntry(self.run, number, SENDING, tuple(keys), tuple(types), resend=resend)
        self.record(entry)
        return entry

    def consolidate(self, summary: dict[str, Any]) -> str:
        """Write `ledger.parquet` from every entry, then `_SUCCESS`; the ledger's URI."""
        with self.lake.replacing_file(SIGNAL_PUSHES, self.day, LEDGER_FILE) as path:
            self._write_table(path)
        self.lake.mark(SIGNAL_PUSHES, self.day, summary)
        log.info("signal push ledger consolidated at %s", self.uri)
        return self.uri

    def _write_table(self, path: str) -> None:
        with pq.ParquetWriter(
            path, LEDGER_SCHEMA, filesystem=self.lake.fs, compression="zstd"
        ) as writer:
            for rows in _row_groups(self.entries()):
                writer.write_table(pa.Table.from_pydict(rows, schema=LEDGER_SCHEMA))


def _row_groups(entries: Iterator[BatchEntry]) -> Iterator[dict[str, list[Any]]]:
    """Ledger rows in groups of about `_ROWS_PER_GROUP`; at least one (maybe empty) group."""
    rows: dict[str, list[Any]] = {name: [] for name in LEDGER_SCHEMA.names}
    yielded = False
    for entry in entries:
        ids = entry.signal_ids if entry.status == SENT else (None,) * len(entry.keys)
        for (message_id, rule), signal_type, signal_id in zip(
            entry.keys, entry.signal_types, ids, strict=True
        ):
            rows["message_id"].append(message_id)
            rows["rule"].append(rule)
            rows["signal_type"].append(signal_type)
            rows["batch"].append(entry.name)
            rows["signal_id"].append(signal_id)
            rows["status"].append(entry.status)
        if len(rows["batch"]) >= _ROWS_PER_GROUP:
            yield rows
            yielded, rows = True, {name: [] for name in LEDGER_SCHEMA.names}
    if rows["batch"] or not yielded:
        yield rows


def pushed_signal_counts(lake: Lake, day: date) -> dict[str, int]:
    """Signals of `day` Connect may hold, by signal type: sent, or of unknown outcome."""
    types: dict[str, str] = {}
    for entry in PushLedger(lake, day).entries():
        if entry.status in (SENT, SENDING, UNKNOWN):
            for (message_id, rule), signal_type in zip(entry.keys, entry.signal_types, strict=True):
                types[signal_key(message_id, rule)] = signal_type
    return dict(Counter(types.values()))
