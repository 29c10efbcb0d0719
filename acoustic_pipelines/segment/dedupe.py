"""Find the duplicate messageIds of one day in bounded memory.

While a day is scanned, each valid event's keys are appended to a `KeySpill` on local disk:
fixed-width columns (a 64-bit hash of the messageId, receivedAt, file and line, hashes of the
user ids) as raw numpy files, and the messageIds themselves in an Arrow IPC file. Then
`find_duplicates` sorts 16 bytes per event with numpy and compares the real messageIds only of
the events whose hash occurs more than once, so a hash collision never drops an event; a 2 M-event
day needs a few tens of MB.

Across days (`seen_earlier`): a messageId accepted on one of the previous received-days (the
look-back, Segment's own is at least 24 h) is a duplicate too. The earlier days' committed
message ids are streamed once to hash them (8 bytes per id, sorted), today's hashes are looked
up in them, and only the rows that match are compared on their text (a second streaming pass),
so memory stays bounded by the ids' count, never their text.

Hashes are Python's own `hash` of the string: 64 bits, stable within one process, which is all
one ingestion needs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_COLUMNS: dict[str, Any] = {
    "message_hash": np.int64,
    "received_at": np.int64,  # epoch milliseconds
    "file_index": np.int32,
    "line_number": np.int64,
    "user_hash": np.int64,
    "has_user": np.bool_,
    "anonymous_hash": np.int64,
    "has_anonymous": np.bool_,
}
_MESSAGE_IDS = pa.schema([("message_id", pa.string())])


class KeySpill:
    """The dedupe keys of every valid event of a day, in arrival order, spilled to `folder`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.rows = 0
        self._files: dict[str, BinaryIO] = {name: self._path(name).open("wb") for name in _COLUMNS}
        self._ids_path = folder / "message_ids.arrow"
        self._ids = pa.ipc.new_file(str(self._ids_path), _MESSAGE_IDS)

    def append(
        self,
        *,
        message_ids: Sequence[str],
        received_at: pa.Array,
        file_index: Sequence[int],
        line_number: Sequence[int],
        user_ids: Sequence[str | None],
        anonymous_ids: Sequence[str | None],
    ) -> None:
        """Append one batch of events' keys (`received_at` as an Arrow timestamp array)."""
        n = len(message_ids)
        columns = {
            "message_hash": _hashes(message_ids),
            "received_at": received_at.cast(pa.int64()).to_numpy(),
            "file_index": np.fromiter(file_index, np.int32, n),
            "line_number": np.fromiter(line_number, np.int64, n),
            "user_hash": _hashes(user_ids),
            "has_user": _present(user_ids),
            "anonymous_hash": _hashes(anonymous_ids),
            "has_anonymous": _present(anonymous_ids),
        }
        for name, values in columns.items():
            values.astype(_COLUMNS[name], copy=False).tofile(self._files[name])
        ids = pa.array(message_ids, pa.string())
        self._ids.write_batch(pa.RecordBatch.from_arrays([ids], schema=_MESSAGE_IDS))
        self.rows += n

    def close(self) -> None:
        """Finish writing; the columns can be read from now on."""
        for file in self._files.values():
            file.close()
        self._ids.close()

    def column(self, name: str) -> np.ndarray:
        """One fixed-width column for all rows."""
        return np.fromfile(self._path(name), dtype=_COLUMNS[name])

    def take_message_ids(self, rows: np.ndarray) -> pa.ChunkedArray:
        """The messageIds of the given rows (ascending), reading the ids file batch by batch."""
        chunks = []
        offset = 0
        with pa.OSFile(str(self._ids_path)) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                lo, hi = np.searchsorted(rows, [offset, offset + batch.num_rows])
                if hi > lo:
                    chunks.append(batch.column(0).take(pa.array(rows[lo:hi] - offset)))
                offset += batch.num_rows
        return pa.chunked_array(chunks, pa.string())

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.bin"


def find_duplicates(keys: KeySpill) -> np.ndarray:
    """For each row, the row it duplicates (the first by receivedAt, then arrival), or -1.

    Only rows sharing a messageId hash are compared on their text, so collisions cost time only.
    """
    hashes, received_at = keys.column("message_hash"), keys.column("received_at")
    n = hashes.size
    result = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return result
    order = np.lexsort((received_at, hashes))  # stable: arrival order breaks ties
    sorted_hashes = hashes[order]
    shared = sorted_hashes[1:] == sorted_hashes[:-1]
    in_group = np.zeros(n, dtype=bool)
    in_group[1:] |= shared
    in_group[:-1] |= shared
    candidates = np.sort(order[in_group])
    del order, sorted_hashes, shared, in_group
    if candidates.size:
        subset = pa.table(
            {
                "message_id": keys.take_message_ids(candidates),
                "received_at": pa.array(received_at[candidates]),
            }
        )
        winners = duplicate_winners(subset)
        lost = winners >= 0
        result[candidates[lost]] = candidates[winners[lost]]
    return result


def duplicate_winners(keys: pa.Table) -> np.ndarray:
    """For each row of (message_id, received_at), the row it duplicates, or -1 if it is the first.

    Rows are in arrival (file, line) order, which breaks ties between equal receivedAt values.
    """
    n = keys.num_rows
    result = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return result
    table = keys.append_column("seq", pa.array(np.arange(n, dtype=np.int64)))
    order = pc.sort_indices(
        table,
        sort_keys=[("message_id", "ascending"), ("received_at", "ascending"), ("seq", "ascending")],
    ).to_numpy()
    sorted_ids = table.column("message_id").take(order)
    is_first = np.ones(n, dtype=bool)
    is_first[1:] = ~pc.equal(sorted_ids[1:], sorted_ids[:-1]).to_numpy(zero_copy_only=False)
    group_start = np.maximum.accumulate(np.where(is_first, np.arange(n), 0))
    dup_positions = np.flatnonzero(~is_first)
    result[order[dup_positions]] = order[group_start[dup_positions]]
    return result


def distinct_ids(keys: KeySpill, kind: str, keep: np.ndarray) -> int:
    """Distinct `user` or `anonymous` ids among the kept rows, counted on their 64-bit hashes.

    Two different ids share a hash with a probability below 1e-7 for a few million ids.
    """
    present = keys.column(f"has_{kind}") & keep
    return int(np.unique(keys.column(f"{kind}_hash")[present]).size)


def _hashes(values: Sequence[str | None]) -> np.ndarray:
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))


def _present(values: Sequence[str | None]) -> np.ndarray:
    return np.fromiter(
        map(operator.is_not, values, repeat(None)), dtype=np.bool_, count=len(values)
    )


IdBatches = Callable[[], Iterator[pa.Array]]


def seen_earlier(keys: KeySpill, earlier_days: Sequence[IdBatches]) -> np.ndarray:
    """For each row, the index in `earlier_days` of the first day that accepted its messageId, or -1.

    Each entry of `earlier_days` streams one earlier day's accepted message ids (it is called
    at most twice: hashes, then the exact comparison of the rows whose hash matched).
    """
    hashes = keys.column("message_hash")
    result = np.full(hashes.size, -1, dtype=np.int16)
    for index, id_batches in enumerate(earlier_days):
        earlier = np.unique(
            np.concatenate(
                [_hashes(batch.to_pylist()) for batch in id_batches()] or [np.empty(0, np.int64)]
            )
        )
        rows = np.flatnonzero((result < 0) & np.isin(hashes, earlier, assume_unique=False))
        del earlier
        if not rows.size:
            continue
        candidates = keys.take_message_ids(rows)
        wanted = pc.unique(candidates)
        found = [batch.filter(pc.is_in(batch, value_set=wanted)) for batch in id_batches()]
        if found:
            known = pa.chunked_array(found, pa.string()).combine_chunks()
            result[rows[pc.is_in(candidates, value_set=known).to_numpy()]] = index
    return result
