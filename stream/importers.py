"""Real clickstream logs (REES46, Taobao UserBehavior) to Segment-spec track events.

Pure mapping: rows in, Segment event dicts out, no file I/O and no wall clock (file reading lives
in ``scripts/importer.py``). Every output is a ``track`` call named as in the Segment e-commerce
spec; ids are deterministic, so importing the same file twice gives identical events.

Rows that cannot become a valid event (wrong column count, unknown event type, unparseable time
or price, empty ids) are skipped, never raised on: the decoder would not dead-letter most of them
(a bad ``price`` is just a property), so passing them on would hide the problem. Pass an
:class:`ImportStats` to learn how many rows were skipped and why.

>>> stats = ImportStats()
>>> rows = [["1", "2268318", "2520377", "pv", "1511544070"], ["1", "x", "y", "like", "0"]]
>>> [e["event"] for e in taobao_events(rows, stats=stats)]
['Product Viewed']
>>> dict(stats.skipped), stats.problems
({'unknown_event_type': 1}, [(2, "unknown behavior 'like'")])
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from stream.timeutil import datetime_to_ms, iso_to_ms, ms_to_iso

__all__ = [
    "LIBRARY",
    "REES46_COLUMNS",
    "REES46_EVENTS",
    "TAOBAO_COLUMNS",
    "TAOBAO_EVENTS",
    "ImportStats",
    "rees46_events",
    "sort_by_time",
    "taobao_events",
]

#: ``context.library`` of every imported event: says where the event came from.
LIBRARY = {"name": "liveprofiles-importer", "version": "1"}
REES46_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "behavior", "timestamp")
REES46_EVENTS = {"view": "Product Viewed", "cart": "Product Added", "purchase": "Order Completed"}
TAOBAO_EVENTS = {
    "pv": "Product Viewed",
    "cart": "Product Added",
    "fav": "Product Added to Wishlist",
    "buy": "Order Completed",
}
_MAX_PROBLEMS = 10  # examples kept for messages; the counts are always complete
_MAX_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z: the last time ISO-8601 can carry
_Row = TypeVar("_Row")
_REES46_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@dataclass(slots=True)
class ImportStats:
    """What an import did: events by name, skipped rows by reason, the first few problems.

    ``problems`` holds ``(line number, message)`` for the first ten skipped rows. Line numbers
    count the file's lines from 1 (the REES46 header is line 1) as long as every row is one line.
    """

    events: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def skip(self, line: int, problem: _RowProblem) -> None:
        self.skipped[problem.reason] += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append((line, problem.message))

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())


class _RowProblem(ValueError):
    """Why one row was skipped: a stable reason code and a readable message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def rees46_events(
    rows: Iterable[Mapping[str, str]], source: str = "rees46", *, stats: ImportStats | None = None
) -> Iterator[dict[str, Any]]:
    """Segment events for REES46 rows (``csv.DictReader`` style), in row order.

    ``user_session`` goes to ``context.session_id``: the Segment spec has no session field, and
    ``context`` is where clients put such extras.

    Parameters
    ----------
    rows
        One mapping per data row, keyed by :data:`REES46_COLUMNS`. Row ``i`` (from 0) is taken
        to be file line ``i + 2``, after the header. Other keys, or a ``None`` value (as
        ``DictReader`` gives for a short row), count as a wrong column count.
    source
        Prefix of every ``messageId``.
    stats
        Filled with events by name and skipped rows by reason, if given.

    Returns
    -------
    Iterator[dict[str, Any]]
        One Segment ``track`` event per valid row, lazily.

    Examples
    --------
    >>> row = dict(zip(REES46_COLUMNS, ["2019-10-01 00:02:14 UTC", "purchase", "1004856",
    ...     "2053013555631882655", "electronics.smartphone", "samsung", "130.76", "543272936",
    ...     "8187d148"]))
    >>> event = next(rees46_events([row]))
    >>> event["event"], event["timestamp"], event["properties"]["revenue"]
    ('Order Completed', '2019-10-01T00:02:14.000Z', 130.76)
    """
    return _map_rows(rows, _rees46_event, source, first_line=2, stats=stats)


def taobao_events(
    rows: Iterable[Sequence[str]], source: str = "taobao", *, stats: ImportStats | None = None
) -> Iterator[dict[str, Any]]:
    """Segment events for Taobao UserBehavior rows (``csv.reader`` style), in row order.

    Taobao has no prices, so no event carries one (none is invented): a ``Product Added``
    without a price adds nothing to a profile's cart.

    Parameters
    ----------
    rows
        One sequence of :data:`TAOBAO_COLUMNS` per row; row ``i`` (from 0) is file line ``i + 1``
        (the file has no header).
    source
        Prefix of every ``messageId``.
    stats
        Filled with events by name and skipped rows by reason, if given.

    Returns
    -------
    Iterator[dict[str, Any]]
        One Segment ``track`` event per valid row, lazily.

    Examples
    --------
    >>> event = next(taobao_events([["1", "46259", "4756105", "buy", "1511661600"]]))
    >>> event["event"], event["timestamp"], sorted(event["properties"])
    ('Order Completed', '2017-11-26T02:00:00.000Z', ['order_id', 'products'])
    >>> event["properties"]["products"]
    [{'product_id': '46259', 'category': '4756105', 'quantity': 1}]
    """
    return _map_rows(rows, _taobao_event, source, first_line=1, stats=stats)


def sort_by_time(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events in event-time order; stable, so ties (and each user's order) keep file order.

    >>> [e["n"] for e in sort_by_time([{"n": 1, "timestamp": "2020-01-02T00:00:00.000Z"},
    ...     {"n": 2, "timestamp": "2020-01-01T00:00:00.000Z"}])]
    [2, 1]
    """
    return sorted(events, key=lambda event: iso_to_ms(event["timestamp"]))


def _map_rows(
    rows: Iterable[_Row],
    to_event: Callable[[_Row, str, int], dict[str, Any]],
    source: str,
    first_line: int,
    stats: ImportStats | None,
) -> Iterator[dict[str, Any]]:
    tally = stats if stats is not None else ImportStats()
    for line, row in enumerate(rows, start=first_line):
        try:
            event = to_event(row, source, line)
        except _RowProblem as problem:
            tally.skip(line, problem)
            continue
        tally.events[event["event"]] += 1
        yield event


def _rees46_event(row: Mapping[str, str], source: str, line: int) -> dict[str, Any]:
    if set(row) != set(REES46_COLUMNS) or not all(isinstance(row[c], str) for c in REES46_COLUMNS):
        raise _RowProblem("wrong_columns", f"expected the {len(REES46_COLUMNS)} REES46 columns")
    kind = row["event_type"]
    name = REES46_EVENTS.get(kind)
    if name is None:
        raise _RowProblem("unknown_event_type", f"unknown event_type {kind!r}")
    ms = _rees46_time(row["event_time"])
    product = _product(row["product_id"], row["category_code"] or row["category_id"])
    if row["brand"]:
        product["brand"] = row["brand"]
    product["price"] = price = _price(row["price"])
    fields = [row[c] for c in REES46_COLUMNS]
    event = _track(source, line, fields, name, _user(row["user_id"]), ms)
    if row["user_session"]:
        event["context"]["session_id"] = row["user_session"]
    event["properties"] = _properties(name, product, event["messageId"], price)
    return event


def _taobao_event(row: Sequence[str], source: str, line: int) -> dict[str, Any]:
    if len(row) != len(TAOBAO_COLUMNS):
        raise _RowProblem("wrong_columns", f"expected 5 columns, got {len(row)}")
    user_id, item_id, category_id, behavior, epoch_s = row
    name = TAOBAO_EVENTS.get(behavior)
    if name is None:
        raise _RowProblem("unknown_event_type", f"unknown behavior {behavior!r}")
    ms = _epoch_seconds(epoch_s) * 1000
    event = _track(source, line, row, name, _user(user_id), ms)
    event["properties"] = _properties(name, _product(item_id, category_id), event["messageId"])
    return event


def _track(
    source: str, line: int, fields: Sequence[str], name: str, user_id: str, ms: int
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "messageId": _message_id(source, line, fields),
        "userId": user_id,
        "timestamp": ms_to_iso(ms),
        "properties": {},
        "context": {"library": dict(LIBRARY)},
    }


def _properties(
    name: str, product: dict[str, Any], message_id: str, price: float | None = None
) -> dict[str, Any]:
    """Segment e-commerce properties: the product itself, or a one-product order."""
    if name == "Product Added":
        return {**product, "quantity": 1}
    if name != "Order Completed":
        return product
    # One order per purchase row, its id derived from the row's id (unique, reproducible).
    order: dict[str, Any] = {"order_id": f"order-{message_id}"}
    if price is not None:
        order.update(revenue=price, total=price, currency="USD")
    order["products"] = [{**product, "quantity": 1}]
    return order


def _product(product_id: str, category: str) -> dict[str, Any]:
    if not product_id:
        raise _RowProblem("missing_id", "empty product id")
    product: dict[str, Any] = {"product_id": product_id}
    if category:
        product["category"] = category
    return product


def _user(user_id: str) -> str:
    if not user_id:
        raise _RowProblem("missing_id", "empty user_id")
    return user_id


def _message_id(source: str, line: int, fields: Sequence[str]) -> str:
    """``{source}-{line}-{hash}``: the line keeps identical rows apart, the hash ties it to the
    row's content so a changed row gets a different id."""
    digest = hashlib.blake2b("\x1f".join(fields).encode(), digest_size=4).hexdigest()
    return f"{source}-{line}-{digest}"


def _rees46_time(text: str) -> int:
    """Epoch ms of ``"2019-10-01 00:00:00 UTC"`` (the only form REES46 uses)."""
    # A pattern and fromisoformat rather than strptime, which was half of the import time.
    try:
        if not _REES46_TIME.fullmatch(text):
            raise ValueError(text)
        return datetime_to_ms(datetime.fromisoformat(text[:-4]).replace(tzinfo=UTC))
    except ValueError:
        message = f"event_time {text!r} is not 'YYYY-MM-DD HH:MM:SS UTC'"
        raise _RowProblem("bad_time", message) from None


def _epoch_seconds(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= _MAX_EPOCH_S:
        raise _RowProblem("bad_time", f"timestamp {text!r} is not epoch seconds")
    return seconds


def _price(text: str) -> float:
    try:
        price = float(text)
    except ValueError:
        price = math.nan
    if not (math.isfinite(price) and price >= 0):
        raise _RowProblem("bad_price", f"price {text!r} is not a non-negative number")
    return price
