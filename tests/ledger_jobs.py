"""Reserving a job in an export-job ledger the way a run does, shared by the ledger, planning and
collection tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from acoustic_pipelines.connect.exports.ledger import ExportLedger, Reservation
from acoustic_pipelines.connect.exports.quota import DailyLimits, Usage


def reserve_job(
    ledger: ExportLedger,
    name: str,
    *,
    window: tuple[date, date],
    now: datetime,
    rows: int = 0,
    size: int = 0,
    definition: str = "behavior",
    attempt: int = 1,
    limits: DailyLimits | None = None,
    held_back: Usage | None = None,
    signal_types: Sequence[str] = ("order",),
) -> Reservation:
    """Reserve `name` for `window` at `now`, estimated at `rows` and `size` bytes (limits:
    Acoustic's unless given; no reserve unless given)."""
    return ledger.reserve(
        job_name=name,
        definition=definition,
        window=window,
        attempt=attempt,
        signal_types=signal_types,
        requested_path=f"Export/Signals/test/{name}.csv",
        estimated=Usage(rows=rows, bytes=size),
        limits=limits or DailyLimits(),
        reserve=held_back or Usage(),
        now=now,
        run_id="run-1",
    )
