"""A small sample warehouse for the demo and the sandbox: customers, subscriptions, orders.

One DuckDB file, deterministic for a day: the same 200 customers and their subscriptions every
day, and the orders of the three UTC days ending with that day (50 a day; every 25th a guest
checkout with no customer, which Segment refuses to track: no user id). A customer's
`lifetime_value` adds up their orders since 2026-01-01 (the table keeps the last three days), so
a later day updates the customers who ordered since, as a warehouse model of lifetime values
would. The file is written aside and
renamed over the old one, so a sync never reads half a warehouse.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

__all__ = ["SampleWarehouse", "write_sample_warehouse"]

CUSTOMERS: Final = 200
ORDERS_PER_DAY: Final = 50
ORDER_DAYS: Final = 3
GUEST_EVERY: Final = 25  # every 25th order is a guest checkout (no customer id)
HISTORY_START: Final = date(2026, 1, 1)  # lifetime values add up the orders since
PLANS: Final = (("free", 0.0), ("plus", 9.0), ("pro", 29.0))
STATUSES: Final = ("active", "active", "active", "trialing", "canceled")
PRODUCTS: Final = (
    ("p-1001", "Organic Cotton Tee", "Apparel", 19.99),
    ("p-1002", "Merino Hoodie", "Apparel", 89.0),
    ("p-1004", "Steel Bottle 750ml", "Outdoor", 32.0),
    ("p-1006", "Daypack 22L", "Outdoor", 119.0),
    ("p-1008", "Enamel Mug", "Kitchen", 14.0),
)
FIRST_NAMES: Final = ("Ann", "Bao", "Carla", "Dmitri", "Esra", "Femi", "Greta", "Hiro", "Ines")
LAST_NAMES: Final = ("Meyer", "Nguyen", "Rossi", "Ivanov", "Yilmaz", "Okafor", "Berg", "Sato")
CITIES: Final = (("Berlin", "DE"), ("Austin", "US"), ("Lyon", "FR"), ("Toronto", "CA"))


@dataclass(frozen=True)
class SampleWarehouse:
    """What `write_sample_warehouse` wrote: the file and each table's row count."""

    path: Path
    rows: dict[str, int]


def _customers() -> list[dict[str, Any]]:
    """The 200 customers (the same every day)."""
    rng = random.Random(14)
    found = []
    for n in range(1, CUSTOMERS + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, country = rng.choice(CITIES)
        found.append(
            {
                "customer_id": f"c-{n:04d}",
                "email": f"{first.lower()}.{last.lower()}.{n}@example.com",
                "first_name": first,
                "last_name": last,
                "city": city,
                "country": country,
                "signed_up_on": date(2026, 1, 1) + timedelta(days=rng.randrange(300)),
                "churn_score": round(rng.random(), 3),
            }
        )
    return found


def _subscriptions(customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One subscription per customer (the same every day)."""
    rng = random.Random(15)
    found = []
    for n, customer in enumerate(customers, start=1):
        plan, price = rng.choice(PLANS)
        found.append(
            {
                "subscription_id": f"s-{n:04d}",
                "customer_id": customer["customer_id"],
                "plan": plan,
                "status": rng.choice(STATUSES) if price else "active",
                "monthly_price": price,
            }
        )
    return found


def _orders(customers: list[dict[str, Any]], day: date) -> list[dict[str, Any]]:
    """The orders of the three days ending with `day`."""
    found = []
    for back in range(ORDER_DAYS - 1, -1, -1):
        found.extend(_orders_of(customers, day - timedelta(days=back)))
    return found


def _lifetime_values(customers: list[dict[str, Any]], day: date) -> dict[str, float]:
    """What each customer spent on every order from HISTORY_START to `day`, the table's included."""
    spent: dict[str, float] = {}
    first = min(HISTORY_START, day)
    for offset in range((day - first).days + 1):
        for order in _orders_of(customers, first + timedelta(days=offset)):
            if order["customer_id"] is not None:
                spent[order["customer_id"]] = spent.get(order["customer_id"], 0.0) + order["total"]
    return spent


def _orders_of(customers: list[dict[str, Any]], order_day: date) -> list[dict[str, Any]]:
    """One day's orders (they depend on the day alone)."""
    found = []
    rng = random.Random(order_day.toordinal())
    start = datetime.combine(order_day, time())  # UTC, as a warehouse TIMESTAMP
    for n in range(1, ORDERS_PER_DAY + 1):
        customer = rng.choice(customers)
        guest = n % GUEST_EVERY == 0
        items = [
            {"product_id": p[0], "name": p[1], "category": p[2], "price": p[3], "quantity": q}
            for p, q in ((rng.choice(PRODUCTS), rng.randint(1, 3)) for _ in range(2))
        ]
        subtotal = round(sum(i["price"] * i["quantity"] for i in items), 2)
        found.append(
            {
                "order_id": f"o-{order_day:%Y%m%d}-{n:03d}",
                "customer_id": None if guest else customer["customer_id"],
                "email": f"guest.{n}@example.net" if guest else customer["email"],
                "ordered_at": start + timedelta(seconds=rng.randrange(86_400)),
                "currency": "USD",
                "subtotal": subtotal,
                "shipping": 4.95,
                "total": round(subtotal + 4.95, 2),
                "products": items,
            }
        )
    return found


def write_sample_warehouse(path: str | Path, day: date) -> SampleWarehouse:
    """Write the sample warehouse for `day` to the DuckDB file `path` (replacing it)."""
    import duckdb

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    aside = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    aside.unlink(missing_ok=True)
    customers = _customers()
    subscriptions = _subscriptions(customers)
    orders = _orders(customers, day)
    spent = _lifetime_values(customers, day)
    for customer in customers:
        customer["lifetime_value"] = round(spent.get(customer["customer_id"], 0.0), 2)
    tables = {"customers": customers, "subscriptions": subscriptions, "orders": orders}
    try:
        with duckdb.connect(str(aside)) as con:
            for name, rows in tables.items():
                arrow = pa.Table.from_pylist(rows)  # noqa: F841 (read by DuckDB below)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM arrow")
        os.replace(aside, target)
    finally:
        aside.unlink(missing_ok=True)
    return SampleWarehouse(path=target, rows={name: len(rows) for name, rows in tables.items()})
