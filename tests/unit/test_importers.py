"""Importers of real logs (REES46, Taobao) to Segment events, and their CLI."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from scripts.importer import main, read_rees46, read_taobao
from stream.decode import decode_event
from stream.events import Event
from stream.importers import (
    LIBRARY,
    REES46_COLUMNS,
    ImportStats,
    rees46_events,
    sort_by_time,
    taobao_events,
)
from stream.timeutil import iso_to_ms

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REES46 = DATA / "rees46" / "events.csv"
TAOBAO = DATA / "taobao" / "user_behavior.csv"
needs_data = pytest.mark.skipif(
    not (REES46.is_file() and TAOBAO.is_file()),
    reason=f"real samples not found under {DATA} (shared data is outside the repository)",
)

# The counts in /work/shared/data/README.md.
REES46_COUNTS = {"Product Viewed": 4915, "Product Added": 50, "Order Completed": 54}
TAOBAO_COUNTS = {
    "Product Viewed": 3926,
    "Product Added": 190,
    "Product Added to Wishlist": 128,
    "Order Completed": 77,
}
SAMPLES = [
    pytest.param("rees46", REES46, REES46_COUNTS, id="rees46"),
    pytest.param("taobao", TAOBAO, TAOBAO_COUNTS, id="taobao"),
]
FIRST_REES46_ROW = [
    "2019-10-01 00:00:00 UTC",
    "view",
    "44600062",
    "2103807459595387724",
    "",
    "shiseido",
    "35.79",
    "541312140",
    "72d76fde-8bb3-4e00-8c23-a032dfed738c",
]


def rees46_row(**changes: str) -> dict[str, str]:
    return {**dict(zip(REES46_COLUMNS, FIRST_REES46_ROW, strict=True)), **changes}


def imported(fmt: str, path: Path) -> list[dict[str, Any]]:
    return sort_by_time((read_rees46 if fmt == "rees46" else read_taobao)(path))


def run_cli(tmp_path: Path, *argv: str) -> tuple[int, bytes]:
    out = tmp_path / "out.ndjson"
    status = main([*argv, "--out", str(out)])
    return status, out.read_bytes() if out.exists() else b""


# --- the real samples ------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize(("fmt", "path", "counts"), SAMPLES)
def test_counts_by_event_name_match_the_data_readme(
    fmt: str, path: Path, counts: dict[str, int]
) -> None:
    stats = ImportStats()
    events = list((read_rees46 if fmt == "rees46" else read_taobao)(path, stats))
    assert Counter(e["event"] for e in events) == counts
    assert stats.events == counts
    assert stats.rows_skipped == 0


@needs_data
@pytest.mark.parametrize(("fmt", "path", "counts"), SAMPLES)
def test_every_event_decodes_with_unique_ids_in_time_order(
    fmt: str, path: Path, counts: dict[str, int]
) -> None:
    events = imported(fmt, path)
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    assert all(isinstance(d, Event) for d in decoded), next(
        d for d in decoded if not isinstance(d, Event)
    )
    assert len({e["messageId"] for e in events}) == len(events)
    times = [iso_to_ms(e["timestamp"]) for e in events]
    assert times == sorted(times)


@needs_data
@pytest.mark.parametrize(("fmt", "path", "counts"), SAMPLES)
def test_import_is_deterministic(
    tmp_path: Path, fmt: str, path: Path, counts: dict[str, int]
) -> None:
    first = run_cli(tmp_path, fmt, str(path))
    second = run_cli(tmp_path, fmt, str(path))
    assert first[0] == second[0] == 0
    assert first[1] == second[1]
    assert first[1].count(b"\n") == sum(counts.values())


@needs_data
def test_first_rees46_row_field_by_field() -> None:
    event = next(read_rees46(REES46))
    assert event == {
        "type": "track",
        "event": "Product Viewed",
        "messageId": event["messageId"],
        "userId": "541312140",
        "timestamp": "2019-10-01T00:00:00.000Z",
        # no category_code on this row: the category_id, as text, stands in
        "properties": {
            "product_id": "44600062",
            "category": "2103807459595387724",
            "brand": "shiseido",
            "price": 35.79,
        },
        "context": {"library": LIBRARY, "session_id": "72d76fde-8bb3-4e00-8c23-a032dfed738c"},
    }
    assert event["messageId"].startswith("rees46-2-")


@needs_data
def test_first_rees46_purchase() -> None:
    purchase = next(e for e in read_rees46(REES46) if e["event"] == "Order Completed")
    product = {
        "product_id": "1004856",
        "category": "electronics.smartphone",  # the dotted path, kept as is
        "brand": "samsung",
        "price": 130.76,
        "quantity": 1,
    }
    assert purchase["timestamp"] == "2019-10-01T00:02:14.000Z"
    assert purchase["properties"] == {
        "order_id": f"order-{purchase['messageId']}",
        "revenue": 130.76,
        "total": 130.76,
        "currency": "USD",
        "products": [product],
    }
    assert purchase["messageId"].startswith("rees46-164-")


@needs_data
def test_taobao_buy_row() -> None:
    buy = next(e for e in read_taobao(TAOBAO) if e["event"] == "Order Completed")
    assert buy["messageId"].startswith("taobao-72-")  # 100,1603476,2951233,buy,1511579908
    assert buy["userId"] == "100"
    assert buy["timestamp"] == "2017-11-25T03:18:28.000Z"
    assert buy["properties"] == {
        "order_id": f"order-{buy['messageId']}",
        "products": [{"product_id": "1603476", "category": "2951233", "quantity": 1}],
    }
    assert buy["context"] == {"library": LIBRARY}


@needs_data
def test_taobao_has_no_prices_and_sorting_interleaves_users() -> None:
    in_file = list(read_taobao(TAOBAO))
    assert not any("price" in str(e["properties"]) for e in in_file)
    # The file is grouped by user; sorting must keep each user's own order.
    by_user = [e["messageId"] for e in in_file]
    per_user_sorted = [e["messageId"] for e in sort_by_time(in_file)]
    for user in {e["userId"] for e in in_file}:
        mine = {e["messageId"] for e in in_file if e["userId"] == user}
        assert [m for m in by_user if m in mine] == [m for m in per_user_sorted if m in mine]


# --- pure mapping edge cases -----------------------------------------------------------------


def test_identical_rows_on_different_lines_get_different_ids() -> None:
    events = list(rees46_events([rees46_row(), rees46_row()]))
    assert [e["messageId"].split("-")[1] for e in events] == ["2", "3"]
    assert events[0]["messageId"].split("-")[2] == events[1]["messageId"].split("-")[2]


def test_cart_maps_to_product_added_with_quantity_one() -> None:
    event = next(rees46_events([rees46_row(event_type="cart", category_code="a.b")]))
    assert event["event"] == "Product Added"
    assert event["properties"]["quantity"] == 1
    assert event["properties"]["category"] == "a.b"


def test_empty_brand_and_session_are_omitted() -> None:
    event = next(rees46_events([rees46_row(brand="", user_session="")]))
    assert "brand" not in event["properties"]
    assert "session_id" not in event["context"]


def test_malformed_rees46_rows_are_skipped_and_counted() -> None:
    short = {k: v for k, v in rees46_row().items() if k != "price"}
    rows = [
        rees46_row(),
        short,
        rees46_row(price="12,50"),
        rees46_row(price="-1"),
        rees46_row(price="nan"),
        rees46_row(event_type="remove_from_cart"),
        rees46_row(event_time="2019-10-01T00:00:00Z"),
        rees46_row(user_id=""),
        rees46_row(event_type="purchase"),
    ]
    stats = ImportStats()
    events = list(rees46_events(rows, stats=stats))
    assert [e["event"] for e in events] == ["Product Viewed", "Order Completed"]
    assert stats.skipped == {
        "wrong_columns": 1,
        "bad_price": 3,
        "unknown_event_type": 1,
        "bad_time": 1,
        "missing_id": 1,
    }
    assert stats.problems[0] == (3, "expected the 9 REES46 columns")
    assert stats.problems[4] == (7, "unknown event_type 'remove_from_cart'")


def test_malformed_taobao_rows_are_skipped_and_counted() -> None:
    rows = [
        ["1", "2", "3", "pv", "1511544070"],
        ["1", "2", "3", "pv"],
        [],
        ["1", "2", "3", "click", "1511544070"],
        ["1", "2", "3", "fav", "yesterday"],
        ["1", "2", "3", "fav", "-5"],
        ["1", "", "3", "cart", "1511544070"],
        ["1", "2", "", "fav", "1511544070"],
    ]
    stats = ImportStats()
    events = list(taobao_events(rows, stats=stats))
    assert [e["event"] for e in events] == ["Product Viewed", "Product Added to Wishlist"]
    assert "category" not in events[1]["properties"]
    assert stats.skipped == {
        "wrong_columns": 2,
        "unknown_event_type": 1,
        "bad_time": 2,
        "missing_id": 1,
    }
    assert stats.problems[1] == (3, "expected 5 columns, got 0")


def test_a_sorted_log_is_unchanged_and_ties_keep_file_order() -> None:
    rows = [["1", str(i), "3", "pv", str(1511544070 + (i > 2))] for i in range(5)]
    events = list(taobao_events(rows))
    assert sort_by_time(events) == events


# --- the CLI ---------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


@needs_data
def test_cli_round_trip_with_gzip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain, gz = tmp_path / "t.ndjson", tmp_path / "t.ndjson.gz"
    assert main(["taobao", str(TAOBAO), "--out", str(plain)]) == 0
    assert main(["taobao", str(TAOBAO), "--out", str(gz)]) == 0
    assert gzip.decompress(gz.read_bytes()) == plain.read_bytes()
    lines = plain.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == imported("taobao", TAOBAO)
    summary = capsys.readouterr().out.splitlines()[0]
    assert summary.startswith(f"wrote 4321 events to {plain}: Product Viewed=3926,")
    assert summary.endswith("; skipped 0 rows")


def test_cli_no_sort_keeps_file_order(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "t.csv", [["1", "7", "3", "pv", "1511544070"], ["2", "8", "3", "pv", "5"]]
    )
    status, sorted_out = run_cli(tmp_path, "taobao", str(source))
    assert status == 0
    assert [orjson.loads(x)["userId"] for x in sorted_out.splitlines()] == ["2", "1"]
    status, kept = run_cli(tmp_path, "taobao", str(source), "--no-sort")
    assert [orjson.loads(x)["userId"] for x in kept.splitlines()] == ["1", "2"]


def test_cli_counts_skipped_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(
        tmp_path / "r.csv",
        [list(REES46_COLUMNS), FIRST_REES46_ROW, [*FIRST_REES46_ROW[:6], "n/a", "1", "s"]],
    )
    status, out = run_cli(tmp_path, "rees46", str(source))
    assert status == 0
    assert out.count(b"\n") == 1
    summary = capsys.readouterr().out.rstrip()
    problem = "first at line 3: price 'n/a' is not a non-negative number"
    assert summary.endswith(f"skipped 1 rows (bad_price=1; {problem})")


@needs_data
@pytest.mark.parametrize(
    ("fmt", "path", "expected"),
    [
        ("rees46", TAOBAO, "line 1: '1,2268318,2520377,pv,1511544070' is not the REES46 header"),
        ("taobao", REES46, "line 1: 9 columns (a REES46 file?)"),
    ],
)
def test_cli_wrong_format_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, path: Path, expected: str
) -> None:
    status, _ = run_cli(tmp_path, fmt, str(path))
    err = capsys.readouterr().err
    assert status == 2
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.ndjson").exists(), "no partial output is left behind"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "line 1: '' is not the REES46 header"),
        (b"1,2,3,pv,1511544070\n", "is not the REES46 header"),
        (",".join(REES46_COLUMNS).encode() + b"\n" + b"\xff\xfe,x\n", "line 2: not UTF-8 text"),
        (",".join(REES46_COLUMNS).encode() + b"\n" + b"a" * 200_000, "line 2: field larger than"),
        (",".join(REES46_COLUMNS).encode() + b"\nx,y\n", "no valid rees46 rows (line 2:"),
    ],
)
def test_cli_bad_rees46_input_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    status, _ = run_cli(tmp_path, "rees46", str(source))
    err = capsys.readouterr().err
    assert status == 2
    assert expected in err, err
    assert err.count("\n") == 1


def test_cli_taobao_first_row_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "t.csv", [["user", "item", "cat", "behavior", "ts"]])
    assert run_cli(tmp_path, "taobao", str(source))[0] == 2
    assert "line 1: 'user,item,cat,behavior,ts' is not a row of" in capsys.readouterr().err


def test_cli_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["taobao", str(tmp_path / "missing.csv")]) == 2
    assert (
        capsys.readouterr().err == f"error: {tmp_path / 'missing.csv'}: No such file or directory\n"
    )
