"""Realistic sample Segment archives for the demo, tests and benchmarks.

One received-day, two sources (a website on analytics.js and an iOS app), one gzip NDJSON file
per source and hour, ~1.3 KB per event: e-commerce v2 track events with products arrays, page
and screen calls, identify calls with traits (email, address, Engage audience traits), group and
alias calls, full `context`. An optional share of lines is deliberately bad; the summary says how
many of each kind were written and which reject reason each kind must get, so a reader's counts
can be checked against what was intended.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from pyarrow.fs import FileSelector, FileType

from acoustic_pipelines.segment import spec
from acoustic_pipelines.segment.archive import LOGS_FOLDER, day_folder
from acoustic_pipelines.storage import Location

Event = dict[str, Any]

SOURCES = (("Wb7x3TqkLp", "web", 0.7), ("Io5mQz8vRa", "ios", 0.3))
PRODUCTS = [
    ("p-1001", "SKU-TEE-01", "Organic Cotton Tee", "Apparel", "Northwind", 19.99),
    ("p-1002", "SKU-HOOD-02", "Merino Hoodie", "Apparel", "Northwind", 89.0),
    ("p-1003", "SKU-CAP-03", "Trail Cap", "Accessories", "Summit", 24.5),
    ("p-1004", "SKU-BOT-04", "Steel Bottle 750ml", "Outdoor", "Summit", 32.0),
    ("p-1005", "SKU-SOCK-05", "Wool Socks (3-pack)", "Apparel", "Fjell", 21.0),
    ("p-1006", "SKU-PACK-06", "Daypack 22L", "Outdoor", "Fjell", 119.0),
    ("p-1007", "SKU-LAMP-07", "Head Lamp", "Outdoor", "Lumen", 45.99),
    ("p-1008", "SKU-MUG-08", "Enamel Mug", "Kitchen", "Camp & Co", 14.0),
]
CITIES = [
    ("Berlin", "DE", "10115", "BE"),
    ("Austin", "US", "73301", "TX"),
    ("Lyon", "FR", "69001", "ARA"),
    ("Sydney", "AU", "2000", "NSW"),
    ("Toronto", "CA", "M5H", "ON"),
]
FIRST_NAMES = ["Ann", "Bao", "Carla", "Dmitri", "Esra", "Femi", "Greta", "Hiro", "Ines", "Jonas"]
LAST_NAMES = [
    "Meyer",
    "Nguyen",
    "Rossi",
    "Ivanov",
    "Yilmaz",
    "Okafor",
    "Berg",
    "Sato",
    "Costa",
    "Lind",
]
AUDIENCES = ["vip_customers", "cart_abandoners_7d", "high_intent_outdoor"]
PAGES = [
    ("/", "Home", "Northwind Outfitters"),
    ("/c/apparel", "Category", "Apparel | Northwind Outfitters"),
    ("/c/outdoor", "Category", "Outdoor | Northwind Outfitters"),
    ("/p/p-1003", "Product", "Trail Cap | Northwind Outfitters"),
    ("/cart", "Cart", "Your cart | Northwind Outfitters"),
    ("/checkout", "Checkout", "Checkout | Northwind Outfitters"),
    ("/account", "Account", "Your account | Northwind Outfitters"),
]
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
TRACK_EVENTS = [
    ("Product Viewed", 24),
    ("Product List Viewed", 12),
    ("Products Searched", 10),
    ("Product Clicked", 10),
    ("Product Added", 14),
    ("Product Removed", 3),
    ("Cart Viewed", 7),
    ("Checkout Started", 5),
    ("Order Completed", 4),
    ("Coupon Applied", 2),
    ("Product Added to Wishlist", 2),
    ("Audience Entered", 1),
]
CALL_WEIGHTS = [
    ("track", 60),
    ("page", 20),
    ("screen", 7),
    ("identify", 9),
    ("group", 3),
    ("alias", 1),
]

# Each kind of deliberately bad line and the reject reason a reader must give it.
BAD_KINDS: dict[str, str] = {
    "truncated_json": spec.MALFORMED_JSON,
    "not_an_object": spec.NOT_AN_OBJECT,
    "unknown_type": spec.UNKNOWN_TYPE,
    "missing_message_id": spec.MISSING_MESSAGE_ID,
    "long_message_id": spec.MESSAGE_ID_TOO_LONG,
    "missing_identity": spec.MISSING_IDENTITY,
    "track_without_event": spec.MISSING_EVENT_NAME,
    "group_without_group_id": spec.MISSING_GROUP_ID,
    "bad_timestamp": spec.INVALID_TIMESTAMP,
    "wrong_type_user_id": spec.INVALID_FIELD_TYPE,
    "properties_not_object": spec.INVALID_FIELD_TYPE,
    "deep_nesting": spec.TOO_DEEP,
    "huge_string": spec.TOO_LARGE,
    "invalid_utf8": spec.INVALID_ENCODING,
    "duplicate_message_id": spec.DUPLICATE_MESSAGE_ID,
}


@dataclass(frozen=True)
class SampleSummary:
    """What a generated archive holds: line counts and the reject reasons the bad lines must get."""

    day: date
    archive_uri: str
    files: tuple[str, ...]
    lines: int
    bad_by_kind: dict[str, int]
    uncompressed_bytes: int

    @property
    def expected_rejects(self) -> dict[str, int]:
        """Reject reason → lines that must get it (duplicates included under their own reason)."""
        counts: Counter[str] = Counter()
        for kind, n in self.bad_by_kind.items():
            counts[BAD_KINDS[kind]] += n
        return dict(counts)

    @property
    def expected_accepted(self) -> int:
        """Lines that must be accepted: everything not deliberately bad or duplicated."""
        return self.lines - sum(self.bad_by_kind.values())


def write_sample_archive(
    archive: Location,
    day: date,
    *,
    events: int = 100_000,
    bad_rate: float = 0.0,
    seed: int | None = None,
) -> SampleSummary:
    """Write `events` lines for received-day `day` under `archive` (replacing that day's files)."""
    if events < 0 or not 0.0 <= bad_rate <= 1.0:
        raise ValueError(f"events = {events} must be ≥ 0 and bad_rate = {bad_rate} within 0..1")
    generator = _Generator(
        day, events, random.Random(seed if seed is not None else day.toordinal())
    )
    folder = day_folder(day)
    for source_id, _, _ in SOURCES:
        _clear(archive, archive.path(LOGS_FOLDER, source_id, folder))
        archive.fs.create_dir(archive.path(LOGS_FOLDER, source_id, folder), recursive=True)
    files: list[str] = []
    bad: Counter[str] = Counter()
    written = 0
    total_bytes = 0
    for hour in range(24):
        for source_id, platform, share in SOURCES:
            count = _file_lines(events, hour, share)
            if count == 0:
                continue
            name = f"{generator.rng.getrandbits(64):016x}.gz"  # opaque, like Segment's
            path = archive.path(LOGS_FOLDER, source_id, folder, name)
            with archive.fs.open_output_stream(path, compression="gzip") as out:
                for _ in range(count):
                    kind, line = generator.line(platform, hour, bad_rate)
                    if kind:
                        bad[kind] += 1
                    out.write(line + b"\n")
                    total_bytes += len(line) + 1
            written += count
            files.append(archive.relative(path))
    return SampleSummary(
        day=day,
        archive_uri=archive.uri,
        files=tuple(files),
        lines=written,
        bad_by_kind=dict(sorted(bad.items())),
        uncompressed_bytes=total_bytes,
    )


def _file_lines(total: int, hour: int, share: float) -> int:
    """Lines of one (hour, source) file: the hour's share of the day, split between the sources."""
    per_hour = total // 24 + (1 if hour < total % 24 else 0)
    first = round(per_hour * SOURCES[0][2])
    return first if share == SOURCES[0][2] else per_hour - first


def _clear(archive: Location, folder: str) -> None:
    for info in archive.fs.get_file_info(FileSelector(folder, allow_not_found=True)):
        if info.type == FileType.File:
            archive.fs.delete_file(info.path)


class _Generator:
    """Builds one line at a time from a seeded random source (same seed, same archive)."""

    def __init__(self, day: date, events: int, rng: random.Random) -> None:
        self.rng = rng
        self.midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        self.users = [self._user(i) for i in range(max(20, events // 25))]
        self.recent: list[bytes] = []  # a few valid lines to duplicate later (bounded)
        self.call_types, self.call_weights = zip(*CALL_WEIGHTS, strict=True)
        self.track_names, self.track_weights = zip(*TRACK_EVENTS, strict=True)
        self.bad_kinds = list(BAD_KINDS)

    def line(self, platform: str, hour: int, bad_rate: float) -> tuple[str | None, bytes]:
        """One archive line; returns the bad kind it was made as (None for a good line)."""
        rng = self.rng
        if bad_rate and rng.random() < bad_rate:
            kind = rng.choice(self.bad_kinds)
            if kind != "duplicate_message_id" or self.recent:
                return kind, self._bad_line(kind, platform, hour)
        event = self._event(platform, hour)
        line = orjson.dumps(event)
        if len(self.recent) < 64:
            self.recent.append(line)
        elif rng.random() < 0.01:
            self.recent[rng.randrange(64)] = line
        return None, line

    # ---- good events ----------------------------------------------------------------------

    def _user(self, i: int) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, country, postal, state = rng.choice(CITIES)
        return {
            "userId": f"u_{i:06d}",
            "anonymousId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "email": f"{first.lower()}.{last.lower()}{i}@example.com",
            "firstName": first,
            "lastName": last,
            "phone": f"+1555{rng.randrange(10**7):07d}",
            "address": {
                "city": city,
                "country": country,
                "postalCode": postal,
                "state": state,
                "street": f"{rng.randrange(1, 200)} Market St",
            },
            "known": rng.random() < 0.6,
            "audiences": {a: rng.random() < 0.3 for a in AUDIENCES},
        }

    def _event(self, platform: str, hour: int) -> Event:
        rng = self.rng
        user = rng.choice(self.users)
        call = rng.choices(self.call_types, self.call_weights)[0]
        if platform == "ios" and call == "page":
            call = "screen"
        elif platform == "web" and call == "screen":
            call = "page"
        received = self.midnight + timedelta(hours=hour, seconds=rng.random() * 3600)
        event = self._envelope(call, user, platform, received)
        getattr(self, f"_fill_{call}")(event, user)
        return event

    def _envelope(
        self, call: str, user: dict[str, Any], platform: str, received: datetime
    ) -> Event:
        rng = self.rng
        original = received - timedelta(milliseconds=rng.randrange(50, 4000))
        sent = original + timedelta(milliseconds=rng.randrange(5, 400))
        event: Event = {
            "type": call,
            "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "anonymousId": user["anonymousId"],
        }
        if user["known"] or call in ("identify", "alias"):
            event["userId"] = user["userId"]
        event["context"] = self._web_context(user) if platform == "web" else self._ios_context(user)
        event["integrations"] = {}
        event["originalTimestamp"] = _iso(original)
        event["sentAt"] = _iso(sent)
        event["receivedAt"] = _iso(received)
        event["timestamp"] = _iso(received - (sent - original))
        event["version"] = 2
        return event

    def _web_context(self, user: dict[str, Any]) -> Event:
        rng = self.rng
        path, _, title = rng.choice(PAGES)
        context: Event = {
            "library": {"name": "analytics.js", "version": "next-1.72.0"},
            "page": {
                "path": path,
                "referrer": "https://www.google.com/",
                "search": "",
                "title": title,
                "url": f"https://shop.example.com{path}",
            },
            "userAgent": USER_AGENT,
            "userAgentData": {
                "brands": [
                    {"brand": "Chromium", "version": "126"},
                    {"brand": "Google Chrome", "version": "126"},
                ],
                "mobile": False,
                "platform": "macOS",
            },
            "ip": f"203.0.113.{rng.randrange(1, 255)}",
            "locale": "en-US",
            "timezone": "America/Chicago",
        }
        if rng.random() < 0.25:
            context["campaign"] = {
                "name": "autumn_sale",
                "source": "newsletter",
                "medium": "email",
                "term": "outdoor",
                "content": "hero_banner",
            }
        if user["known"]:
            context["traits"] = {"email": user["email"], "firstName": user["firstName"]}
        return context

    def _ios_context(self, user: dict[str, Any]) -> Event:
        rng = self.rng
        context: Event = {
            "app": {
                "name": "Northwind",
                "version": "4.12.0",
                "build": "4120",
                "namespace": "com.northwind.shop",
            },
            "device": {
                "id": user["anonymousId"].upper(),
                "manufacturer": "Apple",
                "model": "iPhone15,3",
                "name": "iPhone",
                "type": "ios",
                "adTrackingEnabled": False,
            },
            "library": {"name": "analytics-swift", "version": "1.5.11"},
            "locale": "en-US",
            "network": {
                "bluetooth": False,
                "carrier": "T-Mobile",
                "cellular": rng.random() < 0.4,
                "wifi": True,
            },
            "os": {"name": "iOS", "version": "17.5.1"},
            "screen": {"width": 430, "height": 932, "density": 3},
            "timezone": "America/New_York",
            "ip": f"198.51.100.{rng.randrange(1, 255)}",
        }
        if user["known"]:
            context["traits"] = {"email": user["email"]}
        return context

    def _product(self, position: int | None = None) -> Event:
        product_id, sku, name, category, brand, price = self.rng.choice(PRODUCTS)
        product: Event = {
            "product_id": product_id,
            "sku": sku,
            "category": category,
            "name": name,
            "brand": brand,
            "variant": self.rng.choice(["S", "M", "L", "one size"]),
            "price": price,
            "quantity": self.rng.randint(1, 3),
            "url": f"https://shop.example.com/p/{product_id}",
            "image_url": f"https://cdn.example.com/img/{sku.lower()}.jpg",
        }
        if position is not None:
            product["position"] = position
        return product

    def _fill_track(self, event: Event, user: dict[str, Any]) -> None:
        rng = self.rng
        name = rng.choices(self.track_names, self.track_weights)[0]
        event["event"] = name
        props: Event
        if name == "Products Searched":
            props = {"query": rng.choice(["wool socks", "daypack", "merino", "head lamp"])}
        elif name in ("Product List Viewed", "Cart Viewed"):
            products = [self._product(i + 1) for i in range(rng.randint(2, 5))]
            props = {
                "list_id": "catalog_main",
                "category": products[0]["category"],
                "products": products,
            }
            if name == "Cart Viewed":
                props = {"cart_id": f"c_{user['userId']}", "products": products}
        elif name in ("Checkout Started", "Order Completed"):
            products = [self._product() for _ in range(rng.randint(1, 4))]
            subtotal = round(sum(p["price"] * p["quantity"] for p in products), 2)
            props = {
                "order_id": f"o_{rng.getrandbits(40):010x}",
                "affiliation": "Online Store",
                "subtotal": subtotal,
                "total": round(subtotal * 1.08 + 5, 2),
                "revenue": subtotal,
                "shipping": 5.0,
                "tax": round(subtotal * 0.08, 2),
                "discount": 0,
                "coupon": "",
                "currency": "USD",
                "products": products,
            }
        elif name == "Coupon Applied":
            props = {
                "order_id": f"o_{rng.getrandbits(40):010x}",
                "cart_id": f"c_{user['userId']}",
                "coupon_id": "AUTUMN10",
                "coupon_name": "Autumn 10%",
                "discount": 10,
            }
        elif name == "Audience Entered":
            audience = rng.choice(AUDIENCES)
            props = {"audience_key": audience, audience: True}
        else:
            props = {**self._product(), "cart_id": f"c_{user['userId']}"}
            if name == "Product Viewed":
                props["currency"] = "USD"
                props["value"] = props["price"]
        if user["known"] and rng.random() < 0.3:
            props["email"] = user["email"]
        event["properties"] = props

    def _fill_page(self, event: Event, user: dict[str, Any]) -> None:
        page = event["context"]["page"]
        event["name"] = next(n for p, n, _ in PAGES if p == page["path"])
        event["properties"] = dict(page)

    def _fill_screen(self, event: Event, user: dict[str, Any]) -> None:
        name = self.rng.choice(["Home", "Product Detail", "Cart", "Search", "Profile"])
        event["name"] = name
        event["properties"] = {"name": name, "variation": "v2"}

    def _fill_identify(self, event: Event, user: dict[str, Any]) -> None:
        traits = {k: user[k] for k in ("email", "firstName", "lastName", "phone", "address")}
        traits["createdAt"] = "2025-03-14T09:26:53.589Z"
        if self.rng.random() < 0.3:  # an Engage audience sync
            audience = self.rng.choice(AUDIENCES)
            traits[audience] = user["audiences"][audience]
            event["context"]["personas"] = {
                "computation_class": "audience",
                "computation_key": audience,
                "computation_id": "aud_2abc",
                "space_id": "spa_9xyz",
            }
        event["traits"] = traits

    def _fill_group(self, event: Event, user: dict[str, Any]) -> None:
        event["groupId"] = f"acct_{self.rng.randrange(100):03d}"
        event["traits"] = {
            "name": "Northwind Wholesale",
            "industry": "Retail",
            "employees": 120,
            "plan": "pro",
        }

    def _fill_alias(self, event: Event, user: dict[str, Any]) -> None:
        event["previousId"] = user["anonymousId"]

    # ---- bad lines ------------------------------------------------------------------------

    def _bad_line(self, kind: str, platform: str, hour: int) -> bytes:
        rng = self.rng
        if kind == "duplicate_message_id":
            return rng.choice(self.recent)
        if kind == "invalid_utf8":
            return orjson.dumps(self._event(platform, hour))[:-1] + b',"x":"\xff\xfe"}'
        if kind == "not_an_object":
            return rng.choice([b"[1,2,3]", b'"track"', b"42", b"null"])
        event = self._event(platform, hour)
        if kind == "truncated_json":
            return orjson.dumps(event)[: rng.randrange(10, 200)]
        if kind == "deep_nesting":  # orjson will not write it, so splice the text in
            event.pop("properties", None)
            depth = 1100
            return (
                orjson.dumps(event)[:-1]
                + b',"properties":'
                + b'{"n":' * depth
                + b"true"
                + b"}" * depth
                + b"}"
            )
        _BREAKERS[kind](event, rng)
        return orjson.dumps(event)


def _missing_identity(event: Event, rng: random.Random) -> None:
    event["type"] = "track"
    event["event"] = event.get("event") or "Product Viewed"
    event.pop("userId", None)
    event.pop("anonymousId", None)


def _track_without_event(event: Event, rng: random.Random) -> None:
    event["type"] = "track"
    event.pop("event", None)


def _group_without_group_id(event: Event, rng: random.Random) -> None:
    event["type"] = "group"
    event.pop("groupId", None)


def _wrong_type_user_id(event: Event, rng: random.Random) -> None:
    event["userId"] = rng.randrange(10**6)


_BREAKERS: dict[str, Callable[[Event, random.Random], None]] = {
    "unknown_type": lambda e, r: e.update(type="purchase"),
    "missing_message_id": lambda e, r: e.pop("messageId"),
    "long_message_id": lambda e, r: e.update(messageId="m" * 101),
    "missing_identity": _missing_identity,
    "track_without_event": _track_without_event,
    "group_without_group_id": _group_without_group_id,
    "bad_timestamp": lambda e, r: e.update(
        timestamp=r.choice(["2026-13-45T25:61:00Z", "yesterday", ""])
    ),
    "wrong_type_user_id": _wrong_type_user_id,
    "properties_not_object": lambda e, r: e.update(properties=["not", "an", "object"]),
    "huge_string": lambda e, r: e.update(properties={"description": "x" * 40_000}),
}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
