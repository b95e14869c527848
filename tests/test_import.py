"""Importing customers and events (LANGUAGE.md section 4), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, event, select, text
from sqlalchemy.exc import IntegrityError

from cli import main
from engine.errors import ConfigError, DataError
from engine.importing import events as event_rows
from engine.importing import importers, sources
from engine.importing.importers import (
    import_customer_rows,
    import_customers,
    import_event_rows,
    import_events,
)
from engine.storage import db as storage_db
from engine.storage.bulk import first_load
from engine.storage.db import open_database
from engine.storage.tables import customer_attributes, customer_tags, customers, events

DATA = Path(__file__).parent / "data"
UTC = dt.UTC


def us(*parts: int, hours: float = 0) -> int:
    """Epoch microseconds of a UTC wall time, shifted by `hours` (the offset it was written in)."""
    moment = dt.datetime(*parts, tzinfo=UTC) - dt.timedelta(hours=hours)
    return round(moment.timestamp()) * 1_000_000


@pytest.fixture(autouse=True, params=["this process", "a worker"])
def parsing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with files parsed in this process, and parsed in chunks of 2 rows of the
    file (lines, CSV records) shared by a worker process and this one, stored in transactions
    of 3 or more (so that chunks and transactions end inside every test file)."""
    if request.param == "a worker":
        request.getfixturevalue("only_this_thread")  # else this would be "this process" again
        monkeypatch.setattr(importers, "CHUNK_SIZE", 2)
        monkeypatch.setattr(importers, "BATCH_SIZE", 3)
    else:
        monkeypatch.setattr(importers, "PARSE_IN_WORKER", False)
    return str(request.param)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def stored_customers(engine: Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(customers)).mappings().all()
        links = conn.execute(select(customer_tags)).all()
    # The sign-ups' numbers say in which order imports wrote them (tests/test_tick_late_customers).
    hidden = ("id", "signed_up_seq")
    result = {row["id"]: {k: v for k, v in row.items() if k not in hidden} for row in rows}
    for row in result.values():
        row["tags"] = set()
    for customer_id, tag in links:
        result[customer_id]["tags"].add(tag)
    return result


def stored_events(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(events).order_by(events.c.at_us, events.c.key)).mappings()
        return [{k: v for k, v in row.items() if k != "pk"} for row in rows]


def messages(report: importers.ImportReport) -> list[str]:
    return [str(problem) for problem in report.problems]


# --- customers ---------------------------------------------------------------------------------


def test_customers_from_csv(engine):
    report = import_customers(engine, DATA / "customers.csv", "Europe/Paris")
    assert messages(report) == []
    assert (report.added, report.updated, report.unchanged) == (3, 0, 0)
    assert stored_customers(engine) == {
        "c1": {
            "name": "Ann Lee",
            "email": "ann@example.com",
            "phone": "+86 138 0000 0000",
            "birthday": "1990-12-01",
            "birthday_md": "12-01",
            "timezone": "Asia/Shanghai",
            # without an offset: the customer's own time zone
            "signed_up_us": us(2026, 1, 5, 10, 0, hours=8),
            "accepts_marketing": True,
            "attributes": {"city": "Shanghai"},
            "tags": {"vip", "new"},
        },
        "c2": {
            "name": "Bo",
            "email": None,
            "phone": None,
            "birthday": "02-29",
            "birthday_md": "02-29",
            "timezone": None,
            "signed_up_us": us(2026, 1, 6, 8, 0),
            "accepts_marketing": False,
            "attributes": {"city": "Beijing"},
            "tags": set(),
        },
        "c3": {
            "name": "Chen\nThe Second",
            "email": None,
            "phone": None,
            "birthday": None,
            "birthday_md": None,
            "timezone": None,
            "signed_up_us": None,
            "accepts_marketing": False,
            "attributes": {},
            "tags": set(),
        },
    }


def test_customers_from_json_lines_keep_json_types(engine):
    report = import_customers(engine, DATA / "customers.jsonl", "Europe/Paris")
    assert messages(report) == []
    assert report.added == 3
    stored = stored_customers(engine)
    assert stored["c1"]["tags"] == {"vip", "new"}
    assert stored["c1"]["accepts_marketing"] is True
    assert stored["c1"]["signed_up_us"] == us(2026, 1, 5, 10, 0, hours=8)
    assert stored["c2"]["attributes"] == {"city": "Beijing", "vip_level": 3}
    assert stored["3"]["attributes"] == {"prefs": {"channel": "sms", "sizes": ["M", "L"]}}
    assert stored["3"]["email"] is None


def test_signed_up_without_offset_or_zone_is_shop_local(engine, tmp_path):
    path = write(tmp_path, "c.csv", "id,signed_up\nc1,2026-07-01 09:00\n")
    import_customers(engine, path, "Europe/Paris")
    assert stored_customers(engine)["c1"]["signed_up_us"] == us(2026, 7, 1, 9, 0, hours=2)


def test_importing_customers_twice_changes_nothing(engine):
    import_customers(engine, DATA / "customers.csv", "UTC")
    before = stored_customers(engine)
    again = import_customers(engine, DATA / "customers.csv", "UTC")
    assert (again.added, again.updated, again.unchanged, again.bad) == (0, 0, 3, 0)
    assert stored_customers(engine) == before


def test_reimport_updates_the_fields_given_and_keeps_the_others(engine, tmp_path):
    first = write(
        tmp_path,
        "first.csv",
        'id,name,email,accepts_marketing,tags,city\nc1,Ann,ann@example.com,yes,"vip,new",Paris\n',
    )
    second = write(tmp_path, "second.csv", "id,name,email,tags,level\nc1,Ann Lee,,vip,gold\n")
    import_customers(engine, first, "UTC")
    report = import_customers(engine, second, "UTC")
    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    c1 = stored_customers(engine)["c1"]
    assert c1["name"] == "Ann Lee"
    assert c1["email"] == "ann@example.com"  # an empty cell leaves the stored value
    assert c1["accepts_marketing"] is True
    assert c1["tags"] == {"vip"}  # tags given replace the imported tags
    assert c1["attributes"] == {"city": "Paris", "level": "gold"}
    again = import_customers(engine, second, "UTC")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)


def test_the_names_of_the_attributes_imported_are_recorded(engine, tmp_path):
    """`check` asks these (W507: a template's `customer.points` shows a column `points`)
    rather than every customer's attributes: each name a customer was imported with, set;
    not one whose cells are all empty, nor one too long to be a name (over 200 characters)."""
    long = "x" * 201
    first = write(tmp_path, "first.csv", f"id,city,points,{long}\nc1,Paris,,1\nc2,,,2\n")
    second = write(tmp_path, "second.jsonl", '{"id": "c3", "level": "gold", "vip": null}\n')

    def recorded() -> list[str]:
        with engine.connect() as conn:
            names = select(customer_attributes.c.name).order_by(customer_attributes.c.name)
            return list(conn.execute(names).scalars())

    import_customers(engine, first, "UTC")
    assert recorded() == ["city"]
    import_customers(engine, second, "UTC")
    assert recorded() == ["city", "level"]
    import_customers(engine, write(tmp_path, "third.csv", "id,points\nc2,12\n"), "UTC")
    assert recorded() == ["city", "level", "points"]


def test_consent_is_withdrawn_by_saying_false(engine, tmp_path):
    import_customers(engine, write(tmp_path, "a.csv", "id,accepts_marketing\nc1,TRUE\n"), "UTC")
    import_customers(engine, write(tmp_path, "b.csv", "id,accepts_marketing\nc1,No\n"), "UTC")
    assert stored_customers(engine)["c1"]["accepts_marketing"] is False


def test_consent_may_be_written_in_chinese_or_as_y_and_n(engine, tmp_path):
    path = write(tmp_path, "c.csv", "id,accepts_marketing\nc1,是\nc2,否\nc3,Y\nc4,n\n")
    assert messages(import_customers(engine, path, "UTC")) == []
    consent = {cid: c["accepts_marketing"] for cid, c in stored_customers(engine).items()}
    assert consent == {"c1": True, "c2": False, "c3": True, "c4": False}


def test_the_same_customer_twice_in_a_file_ends_with_the_last_row(engine, tmp_path):
    path = write(tmp_path, "c.csv", "id,name\nc1,First\nc1,Second\nc1,Second\n")
    report = import_customers(engine, path, "UTC")
    assert (report.added, report.updated, report.unchanged) == (1, 1, 1)
    assert stored_customers(engine)["c1"]["name"] == "Second"


def test_bad_customer_rows_are_reported_by_line_and_skipped(engine, tmp_path):
    path = write(
        tmp_path,
        "customers.csv",
        "id,name,birthday,timezone,accepts_marketing,signed_up\n"
        "c1,Ann,1990-02-30,,,\n"
        "c2,Bo,13-01,,,\n"
        "c3,Chen,02-29,Mars/Base,,\n"
        "c4,Di,,,maybe,\n"
        'c5,"Ed\nthe elder",,,,last week\n'
        ",Fay,,,,\n"
        "c7,Gus,1985-06-15,Europe/Paris,YES,2026-03-29 02:30\n",
    )
    report = import_customers(engine, path, "UTC")
    assert messages(report) == [
        f"{path}:2: `birthday`: '1990-02-30' is not a date written YYYY-MM-DD or MM-DD:"
        " there is no such day",
        f"{path}:3: `birthday`: '13-01' is not a date written YYYY-MM-DD or MM-DD:"
        " there is no such day",
        f"{path}:4: `timezone`: 'Mars/Base' is not an IANA time zone such as 'Asia/Shanghai'"
        " or 'Europe/Paris'",
        f"{path}:5: `accepts_marketing`: expected true or false (or yes/no, y/n, 1/0, 是/否),"
        " got 'maybe'",
        f"{path}:6: `signed_up`: 'last week' is not an ISO 8601 time such as"
        " 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00",
        f"{path}:8: the customer has no `id`",
    ]
    stored = stored_customers(engine)
    assert list(stored) == ["c7"]
    # 02:30 does not exist in Paris on 2026-03-29: it moves forward by the gap, to 03:30 CEST.
    assert stored["c7"]["signed_up_us"] == us(2026, 3, 29, 1, 30)
    assert stored["c7"]["accepts_marketing"] is True


def test_an_unclosed_or_stray_quote_is_a_bad_row_not_a_long_value(engine, tmp_path):
    path = write(
        tmp_path,
        "customers.csv",
        'id,name\nc1,Ann\nc2,"Bo" the second\nc3,"Chen\nc4,Di\n',
    )
    report = import_customers(engine, path, "UTC")
    assert messages(report) == [
        f"{path}:3: a quoted cell goes on after its closing quote (line 3): write a quote inside"
        ' a cell as two: ""',
        f"{path}:4: a quote opens a cell that is never closed: lines 4-5, the rest of the file,"
        ' were read as that cell (write a quote inside a cell as two: "")',
    ]
    assert list(stored_customers(engine)) == ["c1"]


def test_a_quoted_cell_may_be_long_and_span_lines(engine, tmp_path):
    note = "a" * 200_000 + "\n2,inside the note\n3,still inside"
    path = write(tmp_path, "customers.csv", f'id,note\n1,"{note}"\n4,after\n')
    report = import_customers(engine, path, "UTC")
    assert messages(report) == []
    stored = stored_customers(engine)
    assert sorted(stored) == ["1", "4"]
    assert stored["1"]["attributes"] == {"note": note}


def test_a_quote_never_closed_names_the_lines_it_took_in(engine, tmp_path):
    rows = "".join(f"{n},name {n}\n" for n in range(2, 300))
    path = write(tmp_path, "customers.csv", f'id,name\n1,"Ann\n{rows}')
    limit = csv.field_size_limit(1_000)  # as if the file went on past the 16 MB of a cell
    try:
        report = import_customers(engine, path, "UTC")
    finally:
        csv.field_size_limit(limit)
    [problem] = report.problems
    assert problem.line == 2 and "a quote that is never closed" in problem.message
    last = int(problem.message.split("lines 2-")[1].split(")")[0])
    # The lines it took in are named, and every row after them is stored.
    assert sorted(stored_customers(engine), key=int) == [str(n) for n in range(last, 300)]


def test_blanks_before_a_quoted_cell_are_dropped(engine, tmp_path):
    path = write(tmp_path, "customers.csv", 'id, name, city\n2, "Bob, Jr", \n3, "Cy", "Rome"\n')
    report = import_customers(engine, path, "UTC")
    assert messages(report) == []
    stored = stored_customers(engine)
    assert (stored["2"]["name"], stored["2"]["attributes"]) == ("Bob, Jr", {})
    assert (stored["3"]["name"], stored["3"]["attributes"]) == ("Cy", {"city": "Rome"})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"id,nam\xe9\n1,Bob\n", "1: the header: not UTF-8 text (save the file as UTF-8)"),
        (
            b"id,name\r1,Bob\r2,Ann\r",
            "1: the header: a line ends with a carriage return alone: save the file with LF or"
            " CRLF line ends",
        ),
    ],
)
def test_a_header_that_cannot_be_read_is_named_at_its_line(engine, tmp_path, content, problem):
    path = tmp_path / "customers.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        import_customers(engine, path, "UTC")
    assert str(error.value).startswith(f"{path}:{problem}")
    assert stored_customers(engine) == {}


# --- events --------------------------------------------------------------------------------------


def test_events_from_csv(engine):
    report = import_events(engine, DATA / "events.csv", "Asia/Shanghai")
    assert messages(report) == []
    assert (report.added, report.unchanged, report.customers_created) == (3, 0, 2)
    stored = stored_events(engine)
    assert [(e["key"], e["customer_id"], e["type"], e["at_us"]) for e in stored] == [
        ("e1", "c1", "order.paid", us(2026, 11, 1, 15, 30, hours=8)),
        # no offset: shop-local time
        ("e2", "c1", "order.received", us(2026, 11, 3, 10, 0, hours=8)),
        (stored[2]["key"], "c9", "review.posted", us(2026, 11, 5, 9, 0)),
    ]
    assert stored[2]["key"].startswith("sha256:")
    assert [e["properties"] for e in stored] == [
        {"total": 199.5, "category": "shoes", "sku": "007", "note": "first order"},
        {"category": "shoes"},
        {"rating": 5, "note": "5 stars\nloved it"},
    ]
    assert stored_customers(engine)["c9"] == {
        "name": None,
        "email": None,
        "phone": None,
        "birthday": None,
        "birthday_md": None,
        "timezone": None,
        "signed_up_us": None,
        "accepts_marketing": False,
        "attributes": {},
        "tags": set(),
    }


def test_events_from_json_lines_keep_json_types(engine):
    report = import_events(engine, DATA / "events.jsonl", "Asia/Shanghai")
    assert messages(report) == []
    stored = stored_events(engine)
    assert [e["at_us"] for e in stored] == [
        us(2026, 11, 1, 15, 30, hours=8),
        us(2026, 11, 3, 10, 0, hours=8),
        us(2026, 11, 5, 9, 0),
    ]
    assert [e["properties"] for e in stored] == [
        {"total": 199.5, "category": "shoes", "sku": "007", "note": "first order"},
        {"category": "shoes"},
        {"rating": 5, "verified": True, "items": [{"sku": "A1", "qty": 2}]},
    ]


def test_json_integers_beyond_64_bits_stay_exact(engine, tmp_path):
    path = write(
        tmp_path,
        "e.jsonl",
        '{"customer": "c1", "type": "a.b", "at": "2026-01-01T00:00:00Z",'
        ' "big": 123456789012345678901234, "low": -9223372036854775809,'
        ' "u64": 18446744073709551615, "total": 12.5, "list": [18446744073709551616, 1.5]}\n',
    )
    report = import_events(engine, path, "UTC")
    assert (report.added, report.bad) == (1, 0)
    properties = stored_events(engine)[0]["properties"]
    assert properties == {
        "big": 123456789012345678901234,
        "low": -9223372036854775809,
        "u64": 18446744073709551615,
        "total": 12.5,
        "list": [18446744073709551616, 1.5],
    }
    assert [type(properties[name]) for name in ("big", "low", "u64")] == [int, int, int]


def test_importing_events_twice_adds_nothing(engine):
    import_events(engine, DATA / "events.csv", "UTC")
    before = stored_events(engine)
    again = import_events(engine, DATA / "events.csv", "UTC")
    assert (again.added, again.unchanged, again.customers_created, again.bad) == (0, 3, 0, 0)
    assert stored_events(engine) == before


def test_an_event_whose_id_is_stored_is_skipped_even_if_it_differs(engine, tmp_path):
    import_events(
        engine, write(tmp_path, "a.csv", "id,customer,type,at\ne1,c1,a.b,2026-01-01\n"), "UTC"
    )
    report = import_events(
        engine, write(tmp_path, "b.csv", "id,customer,type,at\ne1,c1,a.b,2026-02-02\n"), "UTC"
    )
    assert (report.added, report.unchanged) == (0, 1)
    assert [e["at_us"] for e in stored_events(engine)] == [us(2026, 1, 1)]


def test_events_without_id_are_the_same_event_when_they_say_the_same(engine, tmp_path):
    path = write(
        tmp_path,
        "e.jsonl",
        '{"customer": "c1", "type": "order.paid", "at": "2026-01-01T08:00:00+08:00", "total": 3}\n'
        '{"customer": "c1", "type": "order.paid", "at": "2026-01-01T00:00:00Z", "total": 3}\n'
        '{"customer": "c1", "type": "order.paid", "at": "2026-01-01T00:00:00Z", "total": 4}\n',
    )
    report = import_events(engine, path, "UTC")
    assert (report.added, report.unchanged) == (2, 1)


def test_a_number_is_the_same_written_whole_or_with_decimals(engine, tmp_path):
    """Rules read numbers as doubles: an order's total of 20 is the order of 20.0, and CSV's
    `20.00` the same as `20`. Exported once each way (a spreadsheet saved again drops the
    zeros), an event without `id` was stored twice, and acted twice: a second thank-you,
    points twice, the total spent doubled. It is stored once, as first written."""
    rows = [
        {"customer": "c1", "type": "order.paid", "at": "2026-01-01T00:00:00Z", "total": 20},
        {"customer": "c1", "type": "order.paid", "at": "2026-01-01T00:00:00Z", "total": 20.0},
        {"customer": "c1", "type": "x.y", "at": "2026-01-01T00:00:00Z", "items": [{"n": 3.0}]},
        {"customer": "c1", "type": "x.y", "at": "2026-01-01T00:00:00Z", "items": [{"n": 3}]},
        {"customer": "c1", "type": "x.y", "at": "2026-01-01T00:00:00Z", "items": [{"n": 0.5}]},
    ]
    report = import_event_rows(engine, rows, "UTC")
    assert (report.added, report.unchanged) == (3, 2)
    path = write(tmp_path, "e.csv", "customer,type,at,total\nc1,order.paid,2026-01-01,20.00\n")
    assert (import_events(engine, path, "UTC").unchanged, len(stored_events(engine))) == (1, 3)
    stored = sorted((e["type"], json.dumps(e["properties"])) for e in stored_events(engine))
    assert stored == [
        ("order.paid", '{"total": 20}'),
        ("x.y", '{"items": [{"n": 0.5}]}'),
        ("x.y", '{"items": [{"n": 3.0}]}'),
    ]


def test_an_event_stored_under_its_decimals_before_is_not_stored_again(engine, tmp_path):
    """An event without `id` imported by an earlier version with a whole number written with
    decimals was stored under the digest of `20.0`: imported again as it was, it is found."""
    properties = '{"total":20.0}'
    at = us(2026, 1, 1)
    content = f"c1\x1forder.paid\x1f{at}\x1f{properties}"
    older = "sha256:" + hashlib.sha256(content.encode()).hexdigest()
    import_customer_rows(engine, [{"id": "c1"}], "UTC")
    with engine.begin() as conn:
        conn.execute(
            events.insert().values(
                key=older, customer_id="c1", type="order.paid", at_us=at, properties={"total": 20.0}
            )
        )
    path = write(tmp_path, "e.csv", "customer,type,at,total\nc1,order.paid,2026-01-01,20.00\n")
    report = import_events(engine, path, "UTC")
    assert (report.added, report.unchanged) == (0, 1)
    # Twice in a file, written whole first: the row written as it was finds it all the same.
    text = "customer,type,at,total\nc1,order.paid,2026-01-01,20\nc1,order.paid,2026-01-01,20.00\n"
    report = import_events(engine, write(tmp_path, "twice.csv", text), "UTC")
    assert (report.added, report.unchanged) == (0, 2)
    # Nothing whole written with decimals: the digest is what it was.
    path = write(tmp_path, "f.csv", "customer,type,at,total\nc2,order.paid,2026-01-01,20.5\n")
    import_events(engine, path, "UTC")
    content = f'c2\x1forder.paid\x1f{at}\x1f{{"total":20.5}}'
    (new,) = [e["key"] for e in stored_events(engine) if e["customer_id"] == "c2"]
    assert new == "sha256:" + hashlib.sha256(content.encode()).hexdigest()


def test_csv_cells_that_are_numbers_become_numbers(engine, tmp_path):
    path = write(
        tmp_path,
        "e.csv",
        "customer,type,at,a,b,c,d,e,f,g,h,i,j,k,l\n"
        f"c1,x.y,2026-01-01T00:00:00Z,12,-3.5,1e3,007,0,.5,1_000,inf,1e400,{HUGE},-{VAST},{LARGEST}\n",
    )
    import_events(engine, path, "UTC")
    assert stored_events(engine)[0]["properties"] == {
        "a": 12,
        "b": -3.5,
        "c": 1000.0,
        "d": "007",
        "e": 0,
        "f": 0.5,
        "g": "1_000",
        "h": "inf",
        # Beyond a double, as text; the largest integer a double holds as a number.
        "i": "1e400",
        "j": HUGE,
        "k": f"-{VAST}",
        "l": int(LARGEST),
    }


# Integers a double cannot hold (it holds up to about 1.8e308), one of them beyond the digits
# Python converts to an integer; and the largest integer it holds.
HUGE = "1" + "0" * 400
VAST = "9" * 5000
LARGEST = str(int(1.7976931348623157e308))


def test_json_numbers_a_double_cannot_hold_make_the_row_bad(engine, tmp_path):
    at = '"at": "2026-11-01T10:00:00Z"'
    path = write(
        tmp_path,
        "events.jsonl",
        "".join(
            f'{{"customer": "c{n}", "type": "order.paid", {at}, "total": {total}}}\n'
            for n, total in enumerate(
                ["NaN", "Infinity", "-1e400", HUGE, f"-{VAST}", LARGEST, f'"{HUGE}"'], 1
            )
        ),
    )
    report = import_events(engine, path, "UTC")
    beyond = "`total`: the number is beyond ±1.8e308, too large to compare"
    assert messages(report) == [
        f"{path}:1: `total`: NaN is not a number; leave the value out when unknown",
        *(f"{path}:{line}: {beyond}" for line in range(2, 6)),
    ]
    assert {e["customer_id"]: e["properties"]["total"] for e in stored_events(engine)} == {
        "c6": int(LARGEST),
        "c7": HUGE,  # text, which rules do not read as a number
    }
    customers_path = write(
        tmp_path,
        "customers.jsonl",
        f'{{"id": "c1", "vip": NaN}}\n{{"id": "c2", "vip": {HUGE}}}\n{{"id": "c3", "vip": 1}}\n',
    )
    report = import_customers(engine, customers_path, "UTC")
    assert messages(report) == [
        f"{customers_path}:1: `vip`: NaN is not a number; leave the value out when unknown",
        f"{customers_path}:2: `vip`: the number is beyond ±1.8e308, too large to compare",
    ]
    # The bad rows created no customer, of either file.
    assert {k: v["attributes"] for k, v in stored_customers(engine).items()} == {
        "c3": {"vip": 1},
        "c6": {},
        "c7": {},
    }


def test_bad_event_rows_are_reported_with_the_line_where_they_start(engine, tmp_path):
    path = write(
        tmp_path,
        "events.csv",
        "customer,type,at,total\n"
        "c1,order.paid,2026-11-01T10:00:00Z,10\n"
        "c1,Order.Paid,2026-11-01T10:00:00Z,10\n"
        'c2,order.paid,"2026-11-01\nT10:00",10\n'
        ",order.paid,2026-11-01T10:00:00Z,1\n"
        "c3,order.paid,2026-11-02T10:00:00Z\n"
        'c4,review.posted,2026-11-02T10:00:00Z,"good\nvery good"\n'
        "c5,order.paid,not a time,3\n",
    )
    report = import_events(engine, path, "UTC")
    assert messages(report) == [
        f"{path}:3: `type`: 'Order.Paid' is not an event name such as order.paid"
        " (entity.happening: lower-case letters, digits and underscores)",
        f"{path}:4: `at`: '2026-11-01\\nT10:00' is not an ISO 8601 time such as"
        " 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00",
        f"{path}:6: the event has no `customer`",
        f"{path}:7: the row has 3 values but the header names 4 columns",
        f"{path}:10: `at`: 'not a time' is not an ISO 8601 time such as"
        " 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00",
    ]
    assert [(e["customer_id"], e["type"]) for e in stored_events(engine)] == [
        ("c1", "order.paid"),
        ("c4", "review.posted"),
    ]
    assert set(stored_customers(engine)) == {"c1", "c4"}


def test_bad_json_lines_are_reported_by_line(engine, tmp_path):
    at = '"at": "2026-11-01T10:00:00Z"'
    path = write(
        tmp_path,
        "events.jsonl",
        f'{{"customer": "c1", "type": "order.paid", {at}}}\n'
        "\n"
        f'{{"customer": "c1", "type": "order.paid", {at}\n'
        "[1, 2]\n"
        '{"customer": "c1", "type": "order.paid"}\n'
        f'{{"customer": ["c1"], "type": "order.paid", {at}}}\n'
        f'{{"customer": "c2", "type": "order.paid", {at}, "total": NaN}}\n'
        f'{{"customer": "c3", "type": 7, {at}}}\n'
        f'{{"customer": "c3", "type": "order.paid", {at}, "id": "x"}}\n'
        # Objects without a line break between them: json said "Extra data".
        f'{{"customer": "c4", "type": "order.paid", {at}}}{{"customer": "c5"}}\n'
        "[1] [2]\n"
        # The lines of a JSON array whose brackets were deleted: each was told to hold one object.
        f'{{"customer": "c6", "type": "order.paid", {at}}},\n'
        f'{{"customer": "c7", "type": "order.paid", {at}}} ] \n',
    )
    report = import_events(engine, path, "UTC")
    assert messages(report) == [
        f"{path}:3: not valid JSON: Expecting ',' delimiter (column 70)",
        f"{path}:4: expected a JSON object {{...}}, got a list",
        f"{path}:5: the event has no `at`",
        f"{path}:6: `customer` must be text, not a list",
        f"{path}:7: `total`: NaN is not a number; leave the value out when unknown",
        f"{path}:8: `type` must be text such as order.paid, not a number",
        f"{path}:10: not valid JSON: more follows the end of the object (column 71): write one"
        " object per line",
        f"{path}:11: not valid JSON: more follows the end of the value (column 5): write one"
        " object per line",
        f"{path}:12: not valid JSON: `,` follows the end of the object (column 71): JSON Lines"
        " have no commas or brackets between objects, delete it",
        f"{path}:13: not valid JSON: `]` follows the end of the object (column 72): JSON Lines"
        " have no commas or brackets between objects, delete it",
    ]
    keys = sorted(e["key"] for e in stored_events(engine))
    assert len(keys) == 2 and keys[1] == "x"


def test_bad_rows_change_nothing_stored_before(engine, tmp_path):
    import_customers(engine, DATA / "customers.csv", "UTC")
    import_events(engine, DATA / "events.csv", "UTC")
    customers_before, events_before = stored_customers(engine), stored_events(engine)
    bad_customers = write(
        tmp_path,
        "c.csv",
        "id,name,birthday,tags\nc1,Changed,1990-13-01,gone\nc2,Changed Too,02-30,\n",
    )
    bad_events = write(
        tmp_path, "e.csv", "id,customer,type,at\ne1,c1,order.paid,soon\ne9,c1,BAD,2026-01-01\n"
    )
    assert import_customers(engine, bad_customers, "UTC").bad == 2
    assert import_events(engine, bad_events, "UTC").bad == 2
    assert stored_customers(engine) == customers_before
    assert stored_events(engine) == events_before


def test_batches_do_not_change_the_outcome(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(importers, "CHUNK_SIZE", 1)
    monkeypatch.setattr(importers, "BATCH_SIZE", 2)
    lines = [f"e{i % 3},c{i % 2},a.b,2026-01-0{1 + i % 3}T00:00:00Z" for i in range(7)]
    path = write(tmp_path, "e.csv", "id,customer,type,at\n" + "\n".join(lines) + "\nbad\n")
    report = import_events(engine, path, "UTC")
    assert (report.added, report.unchanged, report.customers_created) == (3, 4, 2)
    assert messages(report) == [f"{path}:9: the row has 1 value but the header names 4 columns"]
    assert sorted(e["key"] for e in stored_events(engine)) == ["e0", "e1", "e2"]


@pytest.mark.parametrize("first_load", [True, False])
def test_a_file_is_stored_in_its_order_whichever_process_parses_each_chunk(
    engine, tmp_path, monkeypatch, parsing, first_load
):
    """With a worker, the storing process parses the first chunk (of 2 lines) of each four and
    the worker the rest: the events are stored in the file's order, the first of two with one
    key is kept, and the problems are reported in the order of their lines."""
    at = "2026-05-01T08:00:00Z"
    chunk = importers._chunk
    if not first_load:
        import_event_rows(engine, [{"id": "m", "customer": "c1", "type": "a.b", "at": at}], "UTC")
    ids = ["z", "b", "m", "y", "b", "a", "x", "c", "k", "j", "d", "w", "e", "v", "f", "u", "g"]
    lines = [
        f'{{"id": "{i}", "customer": "c{n % 3}", "type": "a.b", "at": "{at}"}}'
        for n, i in enumerate(ids)
    ]
    lines[5] = lines[11] = lines[16] = "{"
    path = write(tmp_path, "e.jsonl", "\n".join(lines) + "\n")
    here = []  # the chunks this process parsed (a worker's calls are made in its own copy)
    monkeypatch.setattr(importers, "_chunk", lambda *args: here.append(1) or chunk(*args))
    report = import_events(engine, path, "UTC")
    # With a worker, chunks 0, 4 and 8 of 9; else one chunk of 5,000 lines.
    assert len(here) == (3 if parsing == "a worker" else 1)
    kept = [i for n, i in enumerate(ids) if n not in (5, 11, 16)]
    problem = "not valid JSON: Expecting property name enclosed in double quotes (column 2)"
    assert messages(report) == [f"{path}:{line}: {problem}" for line in (6, 12, 17)]
    with engine.connect() as conn:
        stored = conn.scalars(select(events.c.key).order_by(events.c.pk)).all()
    assert stored == list(dict.fromkeys(([] if first_load else ["m"]) + kept))


def test_lines_written_to_a_file_after_its_import_began_are_not_read(engine, tmp_path, monkeypatch):
    """Both processes read a file as far as its size when the import began, so that they agree
    on its lines even while something still writes to it."""
    at = "2026-05-01T08:00:00Z"
    lines = [
        f'{{"id": "e{n}", "customer": "c1", "type": "a.b", "at": "{at}"}}\n' for n in range(3000)
    ]
    path = write(tmp_path, "e.jsonl", "".join(lines))
    chunk, appended = importers._chunk, []

    def appending(*args):
        if not appended:
            with path.open("a") as more:
                more.write(f'{{"id": "late", "customer": "c1", "type": "a.b", "at": "{at}"}}\n')
            appended.append(True)
        return chunk(*args)

    monkeypatch.setattr(importers, "_chunk", appending)
    report = import_events(engine, path, "UTC")
    assert (report.added, report.problems) == (3000, [])
    assert "late" not in {event["key"] for event in stored_events(engine)}


def import_failing_at_the_fourth_chunk(engine, tmp_path, monkeypatch) -> Path:
    """Import nine events, e0-e8, in chunks of 2 committed every 4 rows (when they are), storing
    failing at the fourth chunk (e6, e7); the file's path."""
    monkeypatch.setattr(importers, "CHUNK_SIZE", 2)
    monkeypatch.setattr(importers, "BATCH_SIZE", 4)
    calls = []

    def store(connection, rows, report, _clock):
        calls.append(len(rows))
        if len(calls) == 4:
            raise RuntimeError("the disk is full")
        event_rows.store_events(connection, rows, report)

    monkeypatch.setattr(importers, "_EVENTS", replace(importers._EVENTS, store=store))
    lines = [f"e{i},c1,a.b,2026-01-01T00:00:0{i}Z" for i in range(9)]
    path = write(tmp_path, "e.csv", "id,customer,type,at\n" + "\n".join(lines) + "\n")
    with pytest.raises(RuntimeError, match="the disk is full"):
        import_events(engine, path, "UTC")
    return path


def test_an_error_while_storing_keeps_the_transactions_committed_before(
    engine, tmp_path, monkeypatch
):
    at = "2025-12-31T00:00:00Z"  # a table holding events: stored as usual
    import_event_rows(engine, [{"id": "e", "customer": "c1", "type": "a.b", "at": at}], "UTC")
    import_failing_at_the_fourth_chunk(engine, tmp_path, monkeypatch)
    # The first transaction (e0-e3) was committed; the second (e4, e5 stored, e6 failing) not.
    assert [e["key"] for e in stored_events(engine)] == ["e", "e0", "e1", "e2", "e3"]
    assert multiprocessing.active_children() == []
    assert_connections_as_before(engine)


def index_definitions(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
        return list(conn.exec_driver_sql(query).all())


def test_after_an_import_sqlite_reads_a_customer_s_zone_and_consent_from_an_index(engine):
    """The customers are analyzed once imported: without statistics SQLite finds a customer by
    the primary key and reads the row, where the index of (id, zone, consent) answers alone
    (every rule's query reads them for each occurrence)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL an import analyzes every table it writes")
    query = (
        "EXPLAIN QUERY PLAN SELECT c.timezone, c.accepts_marketing"
        " FROM events e JOIN customers c ON c.id = e.customer_id WHERE e.type = 'order.paid'"
    )

    def plan() -> str:
        with engine.connect() as conn:
            return " ".join(row[-1] for row in conn.exec_driver_sql(query))

    covering = "SEARCH c USING COVERING INDEX ix_customers_id_timezone_accepts_marketing"
    assert covering not in plan()  # new, empty, never analyzed
    import_customers(engine, DATA / "customers.csv", "UTC")
    assert covering in plan()


def test_a_first_import_builds_the_lookup_indexes_once_at_its_end(engine, tmp_path):
    """Into an empty table, in one transaction; the indexes end as they were, and hold every
    row (the queries below are answered from them alone)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL every import keeps the indexes up row by row")
    before = index_definitions(engine)
    dropped = []

    @event.listens_for(engine, "before_cursor_execute")
    def noting(conn, cursor, statement, *args):
        if statement.startswith("DROP INDEX"):
            dropped.append(statement)

    import_customers(engine, DATA / "customers.csv", "UTC")
    assert sorted(dropped) == [
        "DROP INDEX ix_customers_birthday_md_id",
        "DROP INDEX ix_customers_id_timezone_accepts_marketing",
        "DROP INDEX ix_customers_signed_up_us_id",
        "DROP INDEX ix_customers_timezone",
    ]
    assert index_definitions(engine) == before
    dropped.clear()
    lines = [f"e{i % 7},c{i % 3},a.b,2026-01-0{1 + i % 5}T00:00:00Z" for i in range(20)]
    path = write(tmp_path, "e.csv", "id,customer,type,at\n" + "\n".join(lines) + "\n")
    report = import_events(engine, path, "UTC")
    assert (report.added, report.unchanged, report.customers_created) == (7, 13, 1)  # c0
    assert sorted(dropped) == [
        "DROP INDEX ix_events_customer_id_type_at_us",
        "DROP INDEX ix_events_type_at_us_customer_id",
    ]
    assert index_definitions(engine) == before
    with engine.connect() as conn:
        by_type = (
            "SELECT count(*) FROM events INDEXED BY ix_events_type_at_us_customer_id"
            " WHERE type = 'a.b'"
        )
        by_customer = (
            "SELECT count(*) FROM events INDEXED BY ix_events_customer_id_type_at_us"
            " WHERE customer_id = 'c1'"
        )
        assert conn.exec_driver_sql(by_type).scalar() == 7
        assert conn.exec_driver_sql(by_customer).scalar() == 2  # e1 and e4
    # Into a table that holds events, rows go in as usual, the indexes kept up row by row.
    dropped.clear()
    more = write(tmp_path, "more.csv", "id,customer,type,at\nf1,c1,a.b,2026-02-01T00:00:00Z\n")
    assert import_events(engine, more, "UTC").added == 1
    assert dropped == []
    assert index_definitions(engine) == before


def test_an_error_in_a_first_import_leaves_the_table_empty_and_its_indexes_as_they_were(
    engine, tmp_path, monkeypatch
):
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL every import keeps the indexes up row by row")
    before = index_definitions(engine)
    path = import_failing_at_the_fourth_chunk(engine, tmp_path, monkeypatch)
    assert stored_events(engine) == []
    assert index_definitions(engine) == before
    assert multiprocessing.active_children() == []
    assert_connections_as_before(engine)
    # The same file imports whole once the trouble is gone.
    monkeypatch.undo()
    assert import_events(engine, path, "UTC").added == 9


def assert_connections_as_before(engine: Engine) -> None:
    """On SQLite an import turns foreign-key checks off on its connection, then on again."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:  # the connection the import used, back from the pool
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000
        with pytest.raises(IntegrityError):
            conn.execute(events.insert().values(key="k", customer_id="nobody", type="a.b", at_us=0))


def test_an_import_leaves_its_connection_as_it_was(engine):
    import_customers(engine, DATA / "customers.csv", "UTC")
    import_events(engine, DATA / "events.jsonl", "UTC")
    assert_connections_as_before(engine)


def test_with_a_progress_bar_the_import_is_the_same(engine, capsys):
    report = import_events(engine, DATA / "events.jsonl", "UTC", progress=True)
    assert (report.added, report.bad) == (3, 0)
    assert capsys.readouterr().out == ""  # the bar goes to stderr


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('[\n  {"id": "a"},\n  {"id": "b"}\n]\n', "a JSON array spread over lines"),
        ('\n[\n{"id": "a"}]\n', "a JSON array spread over lines"),
        ('{\n  "id": "a"\n}\n', "a JSON object spread over lines"),
    ],
)
def test_a_json_file_that_is_not_json_lines_is_refused_whole(engine, tmp_path, text, what):
    """Read line by line, such a file would be bad rows but for the lines that happen to hold a
    whole object (an array's last item): it is refused before anything is stored."""
    path = write(tmp_path, "c.jsonl", text)
    line = 2 if text.startswith("\n") else 1
    with pytest.raises(DataError, match=rf"c.jsonl:{line}: the file holds {what}, not JSON Lines"):
        import_customers(engine, path, "UTC")
    assert stored_customers(engine) == {}


# --- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shop.json", "shop.txt", "shop"])
def test_other_file_extensions_are_refused(engine, tmp_path, name):
    path = write(tmp_path, name, "")
    with pytest.raises(DataError, match="cannot tell the format"):
        import_events(engine, path, "UTC")


@pytest.mark.parametrize("name", ["e.jsonl", "e.ndjson", "e.json-lines", "E.JSONL"])
def test_json_lines_extensions(engine, tmp_path, name):
    path = write(tmp_path, name, '{"customer": "c1", "type": "a.b", "at": "2026-01-01"}\n')
    assert import_events(engine, path, "UTC").added == 1


def test_a_csv_header_without_a_required_column_is_refused(engine, tmp_path):
    path = write(tmp_path, "e.csv", "\ncustomer,kind,at\nc1,a.b,2026-01-01\n")
    with pytest.raises(DataError, match=r"e\.csv:2: the header has no 'type' column"):
        import_events(engine, path, "UTC")


def test_a_csv_header_s_known_columns_are_found_whatever_their_case(engine, tmp_path):
    """A spreadsheet's `ID`, `Accepts_Marketing`: the columns they name, not free attributes
    (consent would stay false, a birthday never fire). Free ones keep their case."""
    text = "ID,Name,Accepts_Marketing,BIRTHDAY,City\nc1,Ann,yes,1990-01-02,Paris\n"
    assert import_customers(engine, write(tmp_path, "c.csv", text), "UTC").added == 1
    (ann,) = stored_customers(engine).values()
    assert (ann["name"], ann["accepts_marketing"], ann["birthday"]) == ("Ann", True, "1990-01-02")
    assert ann["attributes"] == {"City": "Paris"}
    events = write(tmp_path, "e.csv", "Customer,Type,AT,Total\nc1,order.paid,2026-01-01,5\n")
    assert import_events(engine, events, "UTC").added == 1
    assert stored_events(engine)[0]["properties"] == {"Total": 5}
    # Words apart: the column was a free attribute, and the customer never signed up.
    text = "id,Signed Up,accepts-marketing,Time  Zone,E-Mail\nc2,2026-01-01,yes,Asia/Shanghai,x\n"
    import_customers(engine, write(tmp_path, "w.csv", text), "UTC")
    bo = stored_customers(engine)["c2"]
    assert (bo["signed_up_us"], bo["accepts_marketing"], bo["timezone"]) == (
        us(2026, 1, 1, hours=8),
        True,
        "Asia/Shanghai",
    )
    assert (bo["email"], bo["attributes"]) == ("x", {})


def test_a_csv_header_separated_otherwise_than_by_commas_says_so(engine, tmp_path):
    path = write(tmp_path, "c.csv", "id;name\nc1;Ann\n")
    with pytest.raises(DataError, match="its cells seem separated by ';': save the file as CSV"):
        import_customers(engine, path, "UTC")


def test_rows_imported_as_they_are_but_likely_not_as_meant_are_noted(engine, tmp_path, capsys):
    """An order's total written as text (`¥1500`, `1,234.50`) counts as not set in rules and
    metrics; a column named as a metric is not what the rules read. Both are imported as they
    are (exit 0), with one warning for each kind of thing at its first row and a count."""
    customers = write(tmp_path, "c.csv", "id,points,orders\np1,500,12\np2,3,\np3,,\n")
    report = import_customers(engine, customers, "UTC")
    (note,) = report.notes.values()
    assert (note.line, note.count) == (2, 2)
    assert note.message.startswith("`orders`, `points` are metrics the rules compute")
    assert not report.problems and report.added == 3

    text = (
        "customer,type,at,total\n"
        'p1,order.paid,2026-01-01T00:00Z,"1,234.50"\n'
        "p1,order.paid,2026-01-02T00:00Z,1500\n"
        "p1,order.paid,2026-01-03T00:00Z,¥1500\n"
        "p1,cart.updated,2026-01-03T00:00Z,some\n"  # not an order's
        "p1,order.paid,2026-01-04T00:00Z, 19.9 \n"
    )
    path = write(tmp_path, "e.csv", text)
    main(["import", "events", str(path), "--db", str(engine.url)])
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"warning: {path}:2: the order's `total` '1,234.50' is text, not a number: rules and"
        " metrics (customer.total_spent) read it as not set; write the amount alone, such as"
        " 1234.50 (2 such rows)"
    ]


def test_an_order_total_spelt_with_capitals_is_noted(engine, tmp_path):
    """Required columns are matched whatever their case, properties keep theirs: a
    spreadsheet's `Total` is not the `total` that rules and metrics read."""
    text = (
        "Customer,Type,At,Total\n"
        "w1,order.paid,2026-01-05T10:00:00Z,150\n"
        "w1,cart.updated,2026-01-05T10:00:00Z,3\n"
        "w1,order.paid,2026-01-06T10:00:00Z,90\n"
    )
    report = import_events(engine, write(tmp_path, "e.csv", text), "UTC")
    (note,) = report.notes.values()
    assert (note.line, note.count) == (2, 2)
    assert note.message.startswith("the order's `Total` is not `total`: rules and metrics read")
    assert report.added == 3


@pytest.mark.parametrize(
    ("header", "columns"),
    [
        ("id,name,name", "columns 2 and 3"),
        # Both were named, but not which columns they were, nor what to do.
        ("id,email,Tel,E-mail", "columns 2 ('email') and 4 ('E-mail'), which mean the same field"),
    ],
)
def test_a_csv_header_naming_a_column_twice_is_refused(engine, tmp_path, header, columns):
    path = write(tmp_path, "c.csv", f"{header}\nc1,a,b,c\n")
    with pytest.raises(DataError) as error:
        import_customers(engine, path, "UTC")
    name = "email" if "mail" in header else "name"
    assert str(error.value) == (
        f"{path}:1: the header names the column {name!r} twice, in {columns}: keep one of them"
        " (delete or rename the other)"
    )
    assert stored_customers(engine) == {}


def test_a_header_s_names_are_read_without_invisible_characters(engine, tmp_path):
    # Names copied from a web page or a chat hold characters that show as nothing: the header
    # had no `id` column, and `name`, `email` and the city were attributes of names no rule
    # could write.
    path = write(
        tmp_path,
        "c.csv",
        "\u200bid,na\u200dme,\ufeffE-mail,Accepts\u200b Marketing,\u2060city\u200e\n"
        "c1,Ann,a@x.com,yes,Paris\n",
    )
    assert messages(import_customers(engine, path, "UTC")) == []
    assert list(stored_customers(engine)) == ["c1"]
    ann = stored_customers(engine)["c1"]
    assert (ann["name"], ann["email"], ann["accepts_marketing"]) == ("Ann", "a@x.com", True)
    assert ann["attributes"] == {"city": "Paris"}
    # A line of such characters alone before the header is blank.
    after = write(tmp_path, "b.csv", "\ufeff\u200b\n\u2060,\ufeff\nid,name\nc9,Zed\n")
    assert messages(import_customers(engine, after, "UTC")) == []
    assert stored_customers(engine)["c9"]["name"] == "Zed"
    both = write(tmp_path, "d.csv", "id,email,\u200bemail\nc2,a,b\n")
    with pytest.raises(DataError) as error:
        import_customers(engine, both, "UTC")
    assert str(error.value) == (
        f"{both}:1: the header names the column 'email' twice, in columns 2 ('email') and 3"
        " ('\\u200bemail'), which mean the same field: keep one of them (delete or rename the"
        " other)"
    )


def test_ids_holding_invisible_characters_are_bad_rows(engine, tmp_path):
    # `c\u200b1` was stored as a customer of its own, which an order of `c1` did not reach.
    path = write(
        tmp_path,
        "c.csv",
        "id,phone\nc\u200b1,\nc2\ufeff,\nc3,138\u200d0013\nc4,13800138000\nЛ\u00adи,\n",
    )
    report = import_customers(engine, path, "UTC")
    spreadsheet = "delete the character (in a spreadsheet, type the cell again)"
    copied = "as text copied from a web page or a chat may: it would not match the same text"
    assert messages(report) == [
        f"{path}:2: `id`: 'c\\u200b1' holds an invisible character (U+200B ZERO WIDTH SPACE),"
        f" {copied} typed without it; {spreadsheet}",
        f"{path}:3: `id`: 'c2\\ufeff' holds an invisible character (U+FEFF ZERO WIDTH NO-BREAK"
        f" SPACE), {copied} typed without it; {spreadsheet}",
        f"{path}:4: `phone`: '138\\u200d0013' holds an invisible character (U+200D ZERO WIDTH"
        f" JOINER), {copied} typed without it; {spreadsheet}",
        f"{path}:6: `id`: 'Л\\xadи' holds an invisible character (U+00AD SOFT HYPHEN),"
        f" {copied} typed without it; {spreadsheet}",
    ]
    assert list(stored_customers(engine)) == ["c4"]
    events_path = write(
        tmp_path,
        "e.jsonl",
        '{"customer":"c4\u2060","type":"order.paid","at":"2026-11-05 10:00"}\n'
        '{"customer":"c4","id":"o\u200b1","type":"order.paid","at":"2026-11-05 10:00"}\n'
        '{"customer":"c4","id":"o1","type":"order.paid","at":"2026-11-05 10:00","n":"a\u200bb"}\n',
    )
    report = import_events(engine, events_path, "UTC")
    assert [str(problem).split(" holds")[0] for problem in report.problems] == [
        f"{events_path}:1: `customer`: 'c4\\u2060'",
        f"{events_path}:2: `id`: 'o\\u200b1'",
    ]
    assert [(e["key"], e["properties"]) for e in stored_events(engine)] == [
        ("o1", {"n": "a\u200bb"})
    ]


def test_byte_order_mark_and_blank_lines_are_ignored(engine, tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeffid,name\r\n\r\nc1,Ann\r\n,\r\nc2,Bo\r\n".encode())
    report = import_customers(engine, path, "UTC")
    assert (report.added, report.bad) == (2, 0)


@pytest.mark.parametrize("name", ["c.jsonl", "c.csv"])
def test_a_row_that_is_not_utf8_is_reported_at_its_line(engine, tmp_path, name):
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_bytes(b'id,name\nc1,Ann\nc2,"Caf\xe9\nBar"\nc3,Bo\n')
    else:
        path.write_bytes(b'{"id": "c1"}\n{"id": "c2", "name": "caf\xe9"}\n{"id": "c3"}\n')
    report = import_customers(engine, path, "UTC")
    line = 3 if name.endswith(".csv") else 2
    assert messages(report) == [f"{path}:{line}: not UTF-8 text (save the file as UTF-8)"]
    assert sorted(stored_customers(engine)) == ["c1", "c3"]


def test_an_unknown_shop_time_zone_is_a_configuration_error(engine):
    with pytest.raises(ConfigError):
        import_events(engine, DATA / "events.csv", "Nowhere/Special")


# --- rows from Python (the demo generator) ------------------------------------------------------


def test_rows_from_python(engine):
    customers_report = import_customer_rows(
        engine,
        [{"id": "c1", "birthday": "12-01", "tags": ["vip"], "vip": True}, {"name": "no id"}],
        "UTC",
    )
    assert messages(customers_report) == ["<demo>:2: the customer has no `id`"]
    events_report = import_event_rows(
        engine,
        [
            {"customer": "c1", "type": "order.paid", "at": dt.datetime(2026, 5, 1, 8, tzinfo=UTC)},
            "not a row",
            {
                "customer": "c1",
                "type": "order.paid",
                "at": "2026-05-01T08:00:00Z",
                "when": dt.date.today(),
            },
        ],
        "UTC",
        source="demo shop",
    )
    assert messages(events_report) == [
        "demo shop:2: expected a mapping of fields, got str",
        "demo shop:3: a property is not a JSON value: Object of type date is not JSON serializable",
    ]
    assert stored_customers(engine)["c1"]["attributes"] == {"vip": True}
    assert [e["at_us"] for e in stored_events(engine)] == [us(2026, 5, 1, 8)]


def test_events_are_stored_in_the_order_given_across_batches(engine, monkeypatch):
    """Events of the same instant are told apart by the order they were stored in."""
    monkeypatch.setattr(importers, "CHUNK_SIZE", 2)
    monkeypatch.setattr(importers, "BATCH_SIZE", 3)
    at = "2026-05-01T08:00:00Z"
    import_event_rows(engine, [{"id": "m", "customer": "c1", "type": "a.b", "at": at}], "UTC")
    ids = ["z", "b", "m", "y", "b", "a", "x", "c", "k"]  # "m" is stored, "b" comes twice
    rows = [{"id": i, "customer": f"c{n % 4}", "type": "a.b", "at": at} for n, i in enumerate(ids)]
    report = import_event_rows(engine, rows, "UTC")
    assert (report.added, report.unchanged, report.customers_created) == (7, 2, 3)
    with engine.connect() as conn:
        stored = conn.scalars(select(events.c.key).order_by(events.c.pk)).all()
    assert stored == ["m", "z", "b", "y", "a", "x", "c", "k"]


def test_rows_given_as_dicts_are_left_as_they_are(engine):
    row = {"customer": "c1", "type": "a.b", "at": "2026-05-01T08:00:00Z", "total": 3}
    with_null = {**row, "total": None}
    given = [dict(row), dict(with_null)]
    report = import_event_rows(engine, given, "UTC")
    assert (report.added, report.bad) == (2, 0)
    assert given == [row, with_null]
    assert sorted((e["properties"] for e in stored_events(engine)), key=len) == [{}, {"total": 3}]


def test_a_python_value_that_cannot_be_compared_is_a_bad_row(engine):
    """Values from Python (pandas' NA, numpy arrays) may refuse `==`: rows are read without it."""

    class Ambiguous:
        def __eq__(self, other: object) -> bool:
            raise TypeError("the truth value is ambiguous")

        __hash__ = object.__hash__

    row = {"customer": "c1", "type": "a.b", "at": "2026-05-01T08:00:00Z", "odd": Ambiguous()}
    report = import_event_rows(engine, [row], "UTC")
    problem = "a property is not a JSON value: Object of type Ambiguous is not JSON serializable"
    assert messages(report) == [f"<demo>:1: {problem}"]


def test_a_bad_event_type_is_reported_on_every_row_that_has_it(engine):
    rows = [
        {"customer": "c1", "type": typ, "at": f"2026-05-0{day}T08:00:00Z"}
        for day, typ in enumerate(["Order.Paid", " order.paid ", "Order.Paid", "order.paid"], 1)
    ]
    report = import_event_rows(engine, rows, "UTC")
    bad = "`type`: 'Order.Paid' is not an event name such as order.paid"
    assert [m.split(" (")[0] for m in messages(report)] == [f"<demo>:1: {bad}", f"<demo>:3: {bad}"]
    assert [e["type"] for e in stored_events(engine)] == ["order.paid", "order.paid"]


def test_a_property_holding_itself_is_reported(engine):
    loop: dict[str, object] = {}
    loop["self"] = loop
    row = {"customer": "c1", "type": "a.b", "at": "2026-05-01T08:00:00Z", "loop": loop}
    report = import_event_rows(engine, [row], "UTC")
    assert messages(report) == ["<demo>:1: `loop`: lists and objects nested more than 64 deep"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_lists_and_objects_nested_too_deep_are_bad_rows(engine, tmp_path):
    at = '"at": "2026-11-01T10:00:00Z"'
    path = write(
        tmp_path,
        "events.jsonl",
        "".join(
            f'{{"customer": "c{n}", "type": "order.paid", {at}, "deep": {nested(depth)}}}\n'
            for n, depth in enumerate([64, 65, 990, 5000], 1)
        ),
    )
    report = import_events(engine, path, "UTC")
    too_deep = "`deep`: lists and objects nested more than 64 deep"
    assert messages(report) == [
        f"{path}:2: {too_deep}",
        f"{path}:3: {too_deep}",
        f"{path}:4: lists and objects nested too deep to read",
    ]
    assert [e["customer_id"] for e in stored_events(engine)] == ["c1"]
    people = write(
        tmp_path, "customers.jsonl", f'{{"id": "c5", "deep": {nested(500)}}}\n{{"id": "c6"}}\n'
    )
    report = import_customers(engine, people, "UTC")
    assert messages(report) == [f"{people}:1: {too_deep}"]
    assert "c6" in stored_customers(engine)


def test_an_import_leaves_no_staging_table_behind(engine):
    rows = [{"customer": "c1", "type": "a.b", "at": "2026-05-01T08:00:00Z"}]
    import_event_rows(engine, rows, "UTC")
    import_event_rows(engine, rows, "UTC")
    if engine.dialect.name == "postgresql":
        query = "SELECT relname FROM pg_class WHERE relpersistence = 't' AND relkind = 'r'"
    else:
        query = "SELECT name FROM sqlite_temp_master WHERE type = 'table'"
    with engine.connect() as conn:
        assert conn.execute(text(query)).all() == []


# --- the command -------------------------------------------------------------------------------


def test_command_imports_and_summarises(db_url, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "nudge.yaml", "timezone: Asia/Shanghai\n")
    main(["import", "customers", str(DATA / "customers.csv"), "--db", db_url])
    main(["import", "events", str(DATA / "events.csv"), "--db", db_url])
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{DATA / 'customers.csv'}: 3 customers imported (3 new, 0 updated), 0 already stored,"
        " 0 bad rows",
        f"{DATA / 'events.csv'}: 3 events imported, 0 already stored, 0 bad rows;"
        " 1 new customer created",
    ]
    engine = open_database(db_url)
    e2 = [e for e in stored_events(engine) if e["key"] == "e2"]
    engine.dispose()
    assert e2[0]["at_us"] == us(2026, 11, 3, 10, 0, hours=8)  # the configured timezone


def test_without_a_configuration_times_without_an_offset_are_noted_as_read_in_utc(
    tmp_path, capsys, monkeypatch
):
    """From a folder without nudge.yaml (a shop's own, beside its rules, is not read by
    `import`), times without an offset are read as UTC: the first such row is named with how
    many there are, for events and for customers without a zone of their own. A person at a
    terminal is also told where the rows go."""
    monkeypatch.chdir(tmp_path)
    path = write(
        tmp_path,
        "e.csv",
        "customer,type,at\nc1,order.paid,2026-01-01T10:00:00Z\nc1,order.paid,2026-01-02 10:00\n"
        "c1,order.paid,2026-01-03T10:00-05:00\nc1,order.paid,2026-01-04\n",
    )
    main(["import", "events", str(path)])
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {path}:3: `at` `2026-01-02 10:00` has no offset, and no configuration gives"
        " the shop's `timezone` (nudge.yaml in this folder, or --config FILE, such as --config"
        " rules/shop/nudge.yaml): such times are read as UTC time (2 such rows)"
    ]
    people = write(
        tmp_path,
        "c.csv",
        "id,signed_up,timezone\nc1,2026-01-01T10:00:00+08:00,\nc2,2026-01-01 10:00,Asia/Tokyo\n"
        "c3,2026-01-01 10:00,\n",
    )
    main(["import", "customers", str(people)])
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {people}:4: `signed_up` `2026-01-01 10:00` has no offset, and no configuration"
        " gives the shop's `timezone` (nudge.yaml in this folder, or --config FILE, such as"
        " --config rules/shop/nudge.yaml): such times are read as UTC time"
    ]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    main(["import", "events", str(path)])
    assert capsys.readouterr().err.splitlines()[0] == (
        "note: no configuration (nudge.yaml in this folder, or --config FILE): importing into"
        " sqlite:///nudge.db, in UTC time"
    )
    write(tmp_path, "nudge.yaml", "timezone: Asia/Shanghai\n")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    main(["import", "events", str(path)])
    assert capsys.readouterr().err == ""


def test_command_exits_1_after_importing_the_good_rows(db_url, tmp_path, capsys):
    path = write(tmp_path, "e.csv", "customer,type,at\nc1,a.b,2026-01-01T00:00Z\nc1,a.b,when\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "events", str(path), "--db", db_url])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: {path}:3: `at`: 'when' is not an ISO 8601 time such as"
        " 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00"
    ]
    assert captured.out.splitlines() == [
        f"{path}: 1 event imported, 0 already stored, 1 bad row; 1 new customer created"
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.csv", ""),
        ("c.csv", "id,name\r\n"),
        ("c.csv", "\ufeffid,name\r\n\r\n,\r\n"),
        ("c.jsonl", ""),
        ("c.jsonl", "\n  \n"),
    ],
)
def test_command_warns_of_a_file_that_holds_no_rows(
    db_url, tmp_path, capsys, monkeypatch, name, content
):
    # Said "0 customers imported" alone, as of a file whose rows were all stored before.
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "nudge.yaml", "timezone: Asia/Shanghai\n")
    path = write(tmp_path, name, content)
    main(["import", "customers", str(path), "--db", db_url])
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"warning: {path} holds no rows"]
    assert captured.out.splitlines() == [
        f"{path}: 0 customers imported (0 new, 0 updated), 0 already stored, 0 bad rows"
    ]
    # A file whose rows are all stored already holds rows.
    full = write(tmp_path, "full.csv", "id\nc1\n")
    main(["import", "customers", str(full), "--db", db_url])
    main(["import", "customers", str(full), "--db", db_url])
    assert capsys.readouterr().err == ""


def test_nul_characters_and_lone_surrogates_are_bad_rows_not_crashes(engine, tmp_path):
    path = write(
        tmp_path,
        "events.jsonl",
        '{"customer": "c1", "type": "order.paid", "at": "2026-11-01"}\n'
        '{"customer": "c2", "type": "order.paid", "at": "2026-11-01", "note": "\\ud800"}\n'
        '{"customer": "c3", "type": "order.paid", "at": "2026-11-01", "note": "a\\u0000b"}\n'
        '{"customer": "c\\u00004", "type": "order.paid", "at": "2026-11-01"}\n',
    )
    report = import_events(engine, path, "UTC")
    assert [problem.line for problem in report.problems] == [2, 3, 4]
    assert [e["customer_id"] for e in stored_events(engine)] == ["c1"]
    people = write(
        tmp_path,
        "customers.jsonl",
        '{"id": "c5", "name": "Eve\\u0000"}\n{"id": "c6", "city": "\\udfff"}\n{"id": "c7"}\n',
    )
    report = import_customers(engine, people, "UTC")
    assert [problem.line for problem in report.problems] == [1, 2]
    assert "c7" in stored_customers(engine)


def test_tags_with_a_nul_or_a_lone_surrogate_are_bad_rows(engine, tmp_path):
    path = write(tmp_path, "customers.csv", 'id,tags\n1,"a\x00b"\n2,"x, y"\n')
    report = import_customers(engine, path, "UTC")
    assert messages(report) == [f"{path}:2: `tags` holds a NUL character, which cannot be stored"]
    people = write(tmp_path, "customers.jsonl", '{"id": "3", "tags": ["a\\ud800b"]}\n')
    report = import_customers(engine, people, "UTC")
    assert messages(report) == [
        f"{people}:1: `tags` holds a lone surrogate (\\ud800-\\udfff), not a character"
    ]
    assert {k: v["tags"] for k, v in stored_customers(engine).items()} == {"2": {"x", "y"}}


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(engine, tmp_path):
    path = write(tmp_path, "customers.csv", "id,note\n1,C:\\u0000dir\n")
    assert messages(import_customers(engine, path, "UTC")) == []
    assert stored_customers(engine)["1"]["attributes"] == {"note": "C:\\u0000dir"}


def test_an_event_type_longer_than_a_key_is_a_bad_row(engine, tmp_path):
    path = write(
        tmp_path,
        "events.csv",
        f"customer,type,at\nc1,order.{'x' * 250},2026-01-01\nc2,order.paid,2026-01-01\n",
    )
    report = import_events(engine, path, "UTC")
    assert messages(report) == [
        f"{path}:2: `type`: 'order.xxxxxxxxxxxxxx'... is longer than 200 characters"
    ]
    assert [e["customer_id"] for e in stored_events(engine)] == ["c2"]


def test_digits_of_other_scripts_make_no_number_and_no_birthday(engine, tmp_path):
    path = write(tmp_path, "customers.csv", "id,birthday\n1,٠٢-٢٩\n2,２０００-０１-１５\n3,02-29\n")
    report = import_customers(engine, path, "UTC")
    assert [problem.line for problem in report.problems] == [2, 3]
    assert list(stored_customers(engine)) == ["3"]
    events_path = write(tmp_path, "events.csv", "customer,type,at,n,m\n3,a.b,2026-01-01,1٠,12\n")
    import_events(engine, events_path, "UTC")
    assert stored_events(engine)[0]["properties"] == {"n": "1٠", "m": 12}


def test_a_time_zone_that_names_no_place_s_time_is_a_bad_row(engine, tmp_path):
    # A folder of zones; the zone of whatever machine runs Nudge; leap seconds counted (27 s
    # off); no place at all; a misspelling, with the nearest name.
    text = "id,timezone\n1,America\n2,Asia/Shanghai\n3,localtime\n4,right/UTC\n5,Factory\n"
    path = write(tmp_path, "customers.csv", text + "6,Europe/Pariss\n7,Asia/Beijing\n8,GMT+8\n")
    report = import_customers(engine, path, "UTC")
    such = "such as 'Asia/Shanghai' or 'Europe/Paris'"
    assert messages(report) == [
        f"{path}:2: `timezone`: 'America' is not an IANA time zone {such}",
        f"{path}:4: `timezone`: 'localtime' is not an IANA time zone {such}",
        f"{path}:5: `timezone`: 'right/UTC' is not an IANA time zone (did you mean `UTC`?)",
        f"{path}:6: `timezone`: 'Factory' is not an IANA time zone {such}",
        f"{path}:7: `timezone`: 'Europe/Pariss' is not an IANA time zone"
        " (did you mean `Europe/Paris`?)",
        f"{path}:8: `timezone`: 'Asia/Beijing' is not an IANA time zone"
        " (did you mean `Asia/Shanghai`?)",
        # Not `GMT+0`, the nearest name, nor `Etc/GMT+8`, which is UTC-8.
        f"{path}:9: `timezone`: 'GMT+8' is not an IANA time zone (name the place rather than"
        " the offset (`Asia/Shanghai` for China's UTC+8): a place's zone follows its clock"
        " changes, and in `Etc/GMT-8` the sign is reversed)",
    ]
    assert list(stored_customers(engine)) == ["2"]


def through_a_pipe(path: Path, content: bytes, run) -> importers.ImportReport:
    """`run(path)` with `path` a named pipe that `content` is written to."""
    os.mkfifo(path)
    writer = threading.Thread(target=path.write_bytes, args=(content,))
    writer.start()
    try:
        return run(path)
    finally:
        writer.join()


def test_a_named_pipe_is_imported(engine, tmp_path):
    content = b"id,name\n1,Ann\n2,Bo\n"
    path = tmp_path / "customers.csv"
    report = through_a_pipe(path, content, lambda path: import_customers(engine, path, "UTC"))
    assert (messages(report), sorted(stored_customers(engine))) == ([], ["1", "2"])


def test_a_named_pipe_s_encoding_is_told_as_a_file_s(engine, tmp_path, monkeypatch):
    # A pipe was read as UTF-8 whatever it held: a file of Chinese Excel's had every row bad but
    # those stored garbled, a UTF-16 one was told its lines end with a carriage return alone.
    text = "id,name,城市\r\nc1,叶,北京\r\nc2,李娜,上海\r\n"
    report = through_a_pipe(
        tmp_path / "c.csv", text.encode("gbk"), lambda path: import_customers(engine, path, "UTC")
    )
    assert messages(report) == []
    assert [str(note) for note in report.notes.values()] == [
        f"{tmp_path / 'c.csv'}:1: not UTF-8 text, but GB18030 (GBK) throughout, as Excel saves"
        " CSV on Chinese Windows: the file is read as that"
    ]
    assert {cid: c["name"] for cid, c in stored_customers(engine).items()} == {
        "c1": "叶",
        "c2": "李娜",
    }
    with pytest.raises(DataError, match='the file is UTF-16 text \\(Excel\'s "Unicode Text"\\)'):
        through_a_pipe(
            tmp_path / "u.csv",
            "id,name\r\nc3,Bob\r\n".encode("utf-16"),
            lambda path: import_customers(engine, path, "UTC"),
        )
    # Weighed by its head: past it, a line that is not GB18030 is read as UTF-8, or is bad.
    monkeypatch.setattr(sources, "PIPE_HEAD", 40)
    rows = ["c4,王芳\n".encode("gbk"), "c5,5 €\n".encode(), "c6,\xff\n".encode("latin-1")]
    content = b"id,name\n" + b"c9,Bo\n" * 3 + b"".join(rows)
    path = tmp_path / "h.csv"
    report = through_a_pipe(path, content, lambda path: import_customers(engine, path, "UTC"))
    assert messages(report) == [f"{path}:7: not UTF-8 text (save the file as UTF-8)"]
    assert [note.line for note in report.notes.values()] == [5]
    names = {cid: c["name"] for cid, c in stored_customers(engine).items()}
    assert (names["c4"], names["c5"]) == ("王芳", "5 €")


def test_reimported_numbers_are_unchanged_however_the_database_gives_them_back(engine, tmp_path):
    path = write(
        tmp_path,
        "customers.jsonl",
        '{"id": "1", "score": 1e23, "ratio": 0.1, "big": 1.5e300, "flag": true}\n'
        '{"id": "2", "score": [1e23, {"x": 3.0}]}\n',
    )
    import_customers(engine, path, "UTC")
    report = import_customers(engine, path, "UTC")
    assert (report.added, report.updated, report.unchanged) == (0, 0, 2)
    # A value of another JSON type is a change, even where Python finds it equal.
    changed = write(tmp_path, "changed.jsonl", '{"id": "1", "flag": 1}\n')
    report = import_customers(engine, changed, "UTC")
    assert (report.updated, stored_customers(engine)["1"]["attributes"]["flag"]) == (1, 1)


def test_an_import_leaves_postgresql_statistics_of_what_it_stored(engine: Engine) -> None:
    # Planned without statistics, an evaluation right after an import can pick an index that
    # reads every customer's events for each occurrence; the import analyzes what it wrote.
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no statistics here")
    assert not import_customer_rows(engine, [{"id": "c1"}], "UTC").problems
    rows = [
        {"customer": "c1", "type": "order.paid", "at": f"2026-06-0{day}T10:00:00Z"}
        for day in range(1, 8)
    ]
    assert not import_event_rows(engine, rows, "UTC").problems
    with engine.connect() as conn:
        counted = conn.execute(
            text("SELECT relname, reltuples FROM pg_class WHERE relname IN ('customers', 'events')")
        ).all()
    assert dict(counted) == {"customers": 1, "events": 7}


def test_an_import_waiting_too_long_for_the_lock_says_so_and_keeps_what_was_stored(
    db_url, tmp_path, capsys, monkeypatch
):
    """While a first import holds SQLite's write lock, another import gives up after the busy
    timeout with a plain error, and its earlier transactions are kept."""
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's writers do not wait for one lock")
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(importers, "PARSE_IN_WORKER", False)  # no fork beside a thread
    engine = open_database(db_url)
    import_customer_rows(engine, [{"id": "c1"}], "UTC")
    held, done = threading.Event(), threading.Event()

    def first_import() -> None:
        with engine.connect() as conn, first_load(conn, events) as loading:
            assert loading
            held.set()
            done.wait(10)

    holder = threading.Thread(target=first_import)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(SystemExit) as exit_:
            main(["import", "customers", str(DATA / "customers.csv"), "--db", db_url])
    finally:
        done.set()
        holder.join()
    assert exit_.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith(f"Error: {DATA / 'customers.csv'}: another process")
    assert "held the database's write lock for more than" in error
    assert list(stored_customers(engine)) == ["c1"]
    engine.dispose()


def test_an_import_whose_statistics_wait_too_long_for_the_lock_keeps_its_rows_quietly(
    db_url, monkeypatch
):
    """Once the rows are stored, SQLite's import analyzes the customers, which needs the write
    lock: held by another process past the busy timeout, the statistics are left as they were
    and the import succeeds."""
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's ANALYZE waits for no writer")
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_S", 0.2)
    engine, other = open_database(db_url), open_database(db_url)
    holders: list[Connection] = []

    @event.listens_for(engine, "before_cursor_execute")
    def lock_first(conn, cursor, statement, parameters, context, executemany):
        if statement == "ANALYZE customers":
            holders.append(other.connect())
            holders[-1].exec_driver_sql("BEGIN IMMEDIATE")  # the write lock

    try:
        report = import_customer_rows(engine, [{"id": "c1"}, {"id": "c2"}], "UTC")
    finally:
        for holder in holders:
            holder.rollback()
            holder.close()
    assert len(holders) == 1
    assert (report.added, report.problems, report.analyzed) == (2, [], False)
    assert report.summary().endswith(
        "; the customers' statistics were not updated, as another process held the database's"
        " write lock (importing again updates them)"
    )
    assert sorted(stored_customers(engine)) == ["c1", "c2"]
    event.remove(engine, "before_cursor_execute", lock_first)
    again = import_customer_rows(engine, [{"id": "c1"}], "UTC")
    assert again.analyzed and "statistics" not in again.summary()
    engine.dispose()
    other.dispose()


def test_a_first_import_does_not_wait_for_readers_to_truncate_the_log(
    db_url, tmp_path, monkeypatch
):
    """The log is truncated after a first import only if no other process reads an older
    snapshot: otherwise the import would wait the whole busy timeout at its end."""
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has no write-ahead log file of its own to truncate")
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_S", 30.0)
    engine = open_database(db_url)
    import_customer_rows(engine, [{"id": "c1"}], "UTC")
    with engine.connect() as reader:
        reader.exec_driver_sql("BEGIN")
        assert reader.execute(select(customers.c.id)).scalars().all() == ["c1"]  # a snapshot
        began = time.monotonic()
        assert import_events(engine, DATA / "events.jsonl", "UTC").added == 3
        assert time.monotonic() - began < 15  # not the busy timeout's 30 s
        reader.rollback()
    with engine.connect() as one, engine.connect() as two:  # the pool's: the import's own too
        for conn in (one, two):
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    engine.dispose()


def test_ids_and_phones_excel_wrote_in_scientific_notation_are_bad_rows(engine, tmp_path):
    # Excel shows a number of more than 11 digits so, and saves it so: distinct order numbers
    # came out as one id (all but the first skipped as already stored), customers as one.
    path = write(
        tmp_path,
        "events.csv",
        "id,customer,type,at\r\n"
        "2.02611E+18,c1,order.paid,2026-11-05 10:00\r\n"
        "o2,1.38123E+12,order.paid,2026-11-06 10:00\r\n"
        "o3,c1,order.paid,2026-11-07 10:00\r\n"
        "3e8,1e10,order.paid,2026-11-08 10:00\r\n",
    )
    report = import_events(engine, path, "UTC")
    fix = (
        "is a number in scientific notation, as Excel shows a long number, and its last digits"
        " are lost: import the file as the shop exported it, or open it in Excel with Data >"
        " From Text/CSV, this column set to Text (Excel keeps 15 digits of a number)"
    )
    assert messages(report) == [
        f"{path}:2: `id`: '2.02611E+18' {fix}",
        f"{path}:3: `customer`: '1.38123E+12' {fix}",
    ]
    assert [e["key"] for e in stored_events(engine)] == ["o3", "3e8"]
    customers_path = write(
        tmp_path, "customers.csv", "id,phone\n1.23457E+12,1\nc2,8.61381E+12\nc3,8613812345678\n"
    )
    report = import_customers(engine, customers_path, "UTC")
    assert messages(report) == [
        f"{customers_path}:2: `id`: '1.23457E+12' {fix}",
        f"{customers_path}:3: `phone`: '8.61381E+12' {fix}",
    ]
    assert stored_customers(engine)["c3"]["phone"] == "8613812345678"


def test_customer_ids_that_lost_their_leading_zeros_are_noted(engine, tmp_path):
    # Excel saves `00123` as `123`: the orders went to a new customer `123`, the file's
    # customers were stored again under ids of their own, and nothing said so.
    stored = write(tmp_path, "c.csv", "id,name\n00123,Ann\n04567,Bo\n10234,Cy\n0A1,Di\n")
    assert messages(import_customers(engine, stored, "UTC")) == []
    at = "2026-01-01T00:00Z"
    events_path = write(
        tmp_path,
        "e.csv",
        "customer,type,at\n"
        + "".join(
            f"{cid},order.paid,{at}\n"
            for cid in ["00123", "99", "123", "10234", "4567", "A1", "123", "0123"]
        ),
    )
    report = import_events(engine, events_path, "UTC")
    assert messages(report) == []
    excel = (
        "without its leading zeros, which Excel drops when it opens and saves a CSV file (and a"
        " program reading ids as numbers)"
    )
    fix = (
        "import the file as the shop exported it, or open it in Excel with Data > From"
        " Text/CSV, the column set to Text"
    )
    assert [str(note) for note in report.notes.values()] == [
        f"{events_path}:4: the customer `123` seems to be `00123`, a stored customer, {excel},"
        f" and the event is stored for `123`, not for `00123`: {fix} (3 such rows)"
    ]
    customers_path = write(tmp_path, "d.jsonl", '{"id": "4567"}\n{"id": 99}\n')
    report = import_customers(engine, customers_path, "UTC")
    assert [str(note) for note in report.notes.values()] == [
        f"{customers_path}:1: the customer `4567` seems to be `04567`, a stored customer,"
        f" {excel}, and the row is stored as `4567`, not as `04567`: {fix}"
    ]


def test_customer_ids_without_leading_zeros_cost_no_lookup_when_none_stored_has_one(engine):
    import_customer_rows(engine, [{"id": "123"}, {"id": "A0"}], "UTC")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    rows = [{"customer": cid, "type": "a.b", "at": "2026-01-01T00:00Z"} for cid in ("12", "7")]
    report = import_event_rows(engine, rows, "UTC")
    assert (report.added, report.notes) == (2, {})
    looked_up = [s for s in statements if " IN " in s.upper() and "customers" in s]
    assert looked_up == []


def test_ids_and_phones_pandas_wrote_with_a_decimal_zero_are_bad_rows(engine, tmp_path):
    # pandas holds a column of integers with an empty cell as floats and writes 13812345678.0:
    # such a customer was stored apart from the same one written 13812345678 in another file.
    path = write(
        tmp_path,
        "customers.csv",
        "id,phone\n13812345678.0,\nc2,13812345678.00\nA.01,v1.0.3\n1.5,0.10\nc3,13812345678\n",
    )
    report = import_customers(engine, path, "UTC")
    fix = (
        "is a whole number written with a decimal point, as pandas writes a column of numbers"
        " that has an empty cell, and would not match '13812345678' written elsewhere: write"
        " the column without it (pandas: read the file with dtype=str, or convert the column"
        " with .astype('Int64') before to_csv)"
    )
    assert messages(report) == [
        f"{path}:2: `id`: '13812345678.0' {fix}",
        f"{path}:3: `phone`: '13812345678.00' {fix}",
    ]
    stored = stored_customers(engine)
    assert {cid: c["phone"] for cid, c in stored.items()} == {
        "A.01": "v1.0.3",
        "1.5": "0.10",
        "c3": "13812345678",
    }
    events_path = write(
        tmp_path,
        "events.csv",
        "id,customer,type,at\n"
        "20261105001.0,c3,order.paid,2026-11-05 10:00\n"
        "o2,13812345678.0,order.paid,2026-11-06 10:00\n"
        "o3,A.01,order.paid,2026-11-07 10:00\n",
    )
    report = import_events(engine, events_path, "UTC")
    assert [m.split(" is a whole")[0] for m in messages(report)] == [
        f"{events_path}:2: `id`: '20261105001.0'",
        f"{events_path}:3: `customer`: '13812345678.0'",
    ]
    assert [(e["key"], e["customer_id"]) for e in stored_events(engine)] == [("o3", "A.01")]
    # JSON Lines are the shop's own text, not a spreadsheet's.
    json_path = write(tmp_path, "customers.jsonl", '{"id":"7.0","phone":"13812345678.0"}\n')
    assert messages(import_customers(engine, json_path, "UTC")) == []
    assert stored_customers(engine)["7.0"]["phone"] == "13812345678.0"


def test_ids_in_json_lines_that_look_like_scientific_notation_are_ids(engine, tmp_path):
    # No spreadsheet writes JSON Lines: a JSON string is the shop's own id, and was a bad row.
    path = write(
        tmp_path,
        "events.jsonl",
        '{"id":"1E+5","customer":"2e+3","type":"order.paid","at":"2026-11-05 10:00"}\n',
    )
    assert messages(import_events(engine, path, "UTC")) == []
    assert [(e["key"], e["customer_id"]) for e in stored_events(engine)] == [("1E+5", "2e+3")]
    customers_path = write(tmp_path, "customers.jsonl", '{"id":"3E+4","phone":"8E+12"}\n')
    assert messages(import_customers(engine, customers_path, "UTC")) == []
    assert stored_customers(engine)["3E+4"]["phone"] == "8E+12"


def test_a_line_longer_than_any_row_is_not_read_whole(engine, tmp_path, monkeypatch):
    # A JSON array of 500 MB on one line, or JSON Lines without line breaks, was read whole,
    # and parsed (gigabytes), before its one bad row was told.
    monkeypatch.setattr(sources, "LINE_LIMIT", 200)
    monkeypatch.setattr(sources, "_SCAN", 16)
    row = '{"customer":"e1","type":"order.paid","at":"2026-11-05T10:00:00Z","n":%d}'
    array = write(tmp_path, "a.jsonl", "\n[" + ",".join(row % n for n in range(9)) + "]\n")
    example = '{"id": "c1", "name": "Li Lei"}'
    with pytest.raises(DataError) as error:
        import_events(engine, array, "UTC")
    assert str(error.value) == (
        f"{array}:2: the file holds a JSON array on one line of more than 32 MB, not JSON Lines:"
        f" write one object per line, such as {example}, without `[`, `]` or commas between them"
    )
    joined = write(tmp_path, "j.jsonl", "".join(row % n for n in range(9)))
    with pytest.raises(DataError) as error:
        import_events(engine, joined, "UTC")
    assert str(error.value) == (
        f"{joined}:1: the line is longer than 32 MB, more than any row: JSON Lines hold one"
        f" object per line, such as {example}, each line ending with a line break"
    )
    assert stored_events(engine) == []
    lines = [row % 1, "".join(row % n for n in range(9)), row % 2]
    mixed = write(tmp_path, "m.jsonl", "\n".join(lines) + "\n")
    assert messages(import_events(engine, mixed, "UTC")) == [
        f"{mixed}:2: the line is longer than 32 MB, more than any row: write one object per line"
    ]
    assert [e["properties"] for e in stored_events(engine)] == [{"n": 1}, {"n": 2}]

    long_csv = "the line is longer than 32 MB, more than any row: if the file's lines end with a"
    long_csv += " carriage return alone, save it with LF or CRLF line ends"
    mac = write(tmp_path, "c.csv", "id,name\r" + "".join(f"c{n},Ann\r" for n in range(50)))
    with pytest.raises(DataError) as error:
        import_customers(engine, mac, "UTC")
    assert str(error.value) == f"{mac}:1: the header: {long_csv}"
    text = f'id,note\nc1,{"x" * 300}\nc2,\nc3,"two\n{"y" * 300}\nlines"\nc4,李娜\n'
    for name, encoding in [("c.csv", "utf-8"), ("g.csv", "gbk")]:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        report = import_customers(engine, path, "UTC")
        assert messages(report) == [f"{path}:2: {long_csv}", f"{path}:4: {long_csv} (line 5)"]
        stored = stored_customers(engine)
        assert {cid: c["attributes"] for cid, c in stored.items()} == {
            "e1": {},  # of the events
            "c2": {},
            "c4": {"note": "李娜"},
        }


@pytest.mark.parametrize("name", ["c.csv", "c.jsonl"])
def test_a_file_in_chinese_excel_s_encoding_is_read_as_that_with_a_warning(engine, tmp_path, name):
    # Excel on Chinese Windows saves CSV in GBK. Read line by line as UTF-8, most rows were
    # bad, and those whose bytes happened to be UTF-8 too were stored garbled (叶 as Ҷ).
    path = tmp_path / name
    if name.endswith(".csv"):
        text = "id,name,城市\r\nc1,叶,北京\r\nc2,李娜,上海\r\nc3,Bo,\r\n"
    else:
        text = '{"id":"c1","name":"叶","城市":"北京"}\n{"id":"c2","name":"李娜","城市":"上海"}\n'
        text += '{"id":"c3","name":"Bo"}\n'
    path.write_bytes(text.encode("gbk"))
    report = import_customers(engine, path, "UTC")
    assert messages(report) == []
    assert [str(note) for note in report.notes.values()] == [
        f"{path}:1: not UTF-8 text, but GB18030 (GBK)"
        " throughout, as Excel saves CSV on Chinese Windows: the file is read as that"
    ]
    stored = stored_customers(engine)
    assert [(stored[c]["name"], stored[c]["attributes"]) for c in stored] == [
        ("叶", {"城市": "北京"}),
        ("李娜", {"城市": "上海"}),
        ("Bo", {}),
    ]
    events_path = tmp_path / "e.csv"
    # 女装 in GBK is UTF-8 too (Ů°): most lines beyond ASCII are not, so the file is GBK.
    text = "customer,type,at,品类\nc1,order.paid,2026-11-05,女装\nc2,order.paid,2026-11-06,男鞋\n"
    events_path.write_bytes(text.encode("gbk"))
    assert messages(import_events(engine, events_path, "UTC")) == []
    assert [e["properties"] for e in stored_events(engine)] == [{"品类": "女装"}, {"品类": "男鞋"}]


@pytest.mark.parametrize(
    "categories",
    [["女装", "童装", "男鞋"] * 2, ["女装"] * 4 + ["男鞋"] * 2],
    ids=["cycling", "sorted"],
)
def test_a_file_in_gbk_whose_lines_are_mostly_utf8_too_is_read_as_gbk(engine, tmp_path, categories):
    # 女装 and 童装 in GBK are UTF-8 too (Ůװ, ͯװ), 男鞋 is not: with a column of a few such words,
    # most lines of the file were UTF-8 (or all before the first that is not, when the file is
    # sorted by it), and the file was read as UTF-8: the rows with 男鞋 were bad, the others
    # stored garbled.
    path = tmp_path / "e.csv"
    rows = [f"c{n},order.paid,2026-11-05,{word}\r\n" for n, word in enumerate(categories)]
    path.write_bytes("".join(["customer,type,at,category\r\n", *rows]).encode("gbk"))
    report = import_events(engine, path, "UTC")
    assert messages(report) == []
    first = categories.index("男鞋") + 2
    assert [str(note) for note in report.notes.values()] == [
        f"{path}:{first}: not UTF-8 text, but GB18030 (GBK) throughout, as Excel saves CSV on"
        " Chinese Windows: the file is read as that"
    ]
    stored = {e["customer_id"]: e["properties"]["category"] for e in stored_events(engine)}
    assert stored == {f"c{n}": word for n, word in enumerate(categories)}


@pytest.mark.parametrize(
    "names",
    [["王芳", "李娜"], ["André Dupont", "Hélène"], ["Air Max 360°", "Lens ±0.5 mm or 5 ± 1"]],
    ids=["chinese", "accented", "signs"],
)
def test_a_utf8_file_with_a_line_in_gbk_is_read_as_utf8(engine, tmp_path, names):
    # The whole file happens to be GB18030 too, which would read every other name garbled. The
    # accented names' letters are of two bytes, as are those of Chinese text in GBK read as UTF-8;
    # so are `°` and `±`, GBK's `掳` and `卤`: names holding them counted for neither side, and
    # the file was read as GBK (`360°` stored as `360掳`).
    path = tmp_path / "c.csv"
    text = "".join(f"c{n},{name}\n" for n, name in enumerate(names, 1))
    path.write_bytes(f"id,name\n{text}".encode() + "c3,刘洋\n".encode("gbk"))
    report = import_customers(engine, path, "UTC")
    assert messages(report) == [f"{path}:4: not UTF-8 text (save the file as UTF-8)"]
    assert report.notes == {}
    assert [c["name"] for c in stored_customers(engine).values()] == names


@pytest.mark.parametrize(
    ("names", "stray", "encoding"),
    [
        (["Иван Петров", "Мария Смирнова"], "Анна Попова", "cp1251"),
        (["محمد علي", "فاطمة حسن"], "محمد أحمد", "cp1256"),
    ],
    ids=["cyrillic", "arabic"],
)
def test_a_utf8_file_in_another_script_with_a_line_in_its_code_page_is_read_as_utf8(
    engine, tmp_path, names, stray, encoding
):
    # Cyrillic and Arabic letters are of two bytes in UTF-8, beside each other, as are Chinese
    # characters of GBK that happen to be UTF-8 (女装 reads Ůװ); the whole file is GB18030 too,
    # and a line from Windows in Russian or Arabic looks Chinese: such a file was read as GBK,
    # every name stored garbled (Иван as 袠胁邪薪).
    path = tmp_path / "c.csv"
    text = "".join(f"c{n},{name}\n" for n, name in enumerate(names, 1))
    content = f"id,name\n{text}".encode() + f"c3,{stray}\n".encode(encoding)
    content.decode("gb18030")
    path.write_bytes(content)
    report = import_customers(engine, path, "UTC")
    assert messages(report) == [f"{path}:4: not UTF-8 text (save the file as UTF-8)"]
    assert report.notes == {}
    assert [c["name"] for c in stored_customers(engine).values()] == names


def test_a_utf8_file_whose_text_beyond_ascii_is_far_before_its_line_in_gbk_is_read_as_utf8():
    # Customers sorted by country: Russian names, then more than 4 MB of ASCII rows, then one
    # line in GBK; the file is GB18030 throughout. Only the 4 MB before that line were weighed,
    # and the file was read as GBK, every Russian name garbled.
    head = "id,name,country\n" + "".join(f"r{n},Иван Петров,RU\n" for n in range(100))
    tail = "".join(f"u{n},John Smith,US\n" for n in range(300_000))
    content = (head + tail).encode() + "x,王芳,CN\n".encode("gbk")
    assert len(content) > 5 * 2**20
    assert sources.text_encoding(io.BytesIO(content), len(content)) is None


@pytest.mark.parametrize("name", ["c.csv", "c.jsonl"])
def test_a_file_in_western_excel_s_encoding_is_not_taken_for_gbk(engine, tmp_path, name):
    # Excel on Western Windows saves CSV in Windows-1252, whose accented letters before an ASCII
    # one are GB18030 characters too (ü l, é n): such a file was read as GBK, without a bad row,
    # every name stored garbled (Hélène as H閘鑞e).
    path = tmp_path / name
    if name.endswith(".csv"):
        text = "id,name,city\nc1,Hélène Lefèvre,Besançon\nc2,Jürgen Müller,München\n"
    else:
        text = '{"id":"c1","name":"Hélène Lefèvre","city":"Besançon"}\n'
        text += '{"id":"c2","name":"Jürgen Müller","city":"München"}\n'
    path.write_bytes(text.encode("cp1252"))
    report = import_customers(engine, path, "UTC")
    lines = (2, 3) if name.endswith(".csv") else (1, 2)
    assert messages(report) == [
        f"{path}:{line}: not UTF-8 text (save the file as UTF-8)" for line in lines
    ]
    assert report.notes == {}
    assert stored_customers(engine) == {}


@pytest.mark.parametrize(
    ("content", "what"),
    [
        ("id,name\r\n1,Bob\r\n".encode("utf-16"), 'UTF-16 text (Excel\'s "Unicode Text")'),
        ("id,name\n1,Bob\n".encode("utf-16-be"), None),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\n\x00id\n", "a workbook (.xlsx) or a zip archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\n", "an Excel 97-2003 workbook (.xls)"),
    ],
)
def test_a_spreadsheet_s_file_other_than_csv_is_refused_whole_saying_what_it_is(
    engine, tmp_path, content, what
):
    # UTF-16 was told to have lines ending in a carriage return alone; a workbook, to be not
    # UTF-8, at its header.
    path = tmp_path / "customers.csv"
    path.write_bytes(content if what else b"\xfe\xff" + content)
    with pytest.raises(DataError) as error:
        import_customers(engine, path, "UTC")
    what = what or "UTF-16 text"
    assert str(error.value) == (
        f"{path}: the file is {what}, not CSV or JSON Lines in UTF-8: in Excel, save it with"
        ' "Save As" and the type "CSV UTF-8 (comma delimited)"'
    )
    assert stored_customers(engine) == {}


def test_tags_may_be_separated_by_the_full_width_comma_of_a_chinese_input_method(engine, tmp_path):
    # "VIP，新客" was one tag, which no rule testing for "VIP" found.
    path = write(tmp_path, "customers.csv", 'id,tags\nc1,"VIP，新客, 北京"\nc2,VIP，老客\n')
    assert messages(import_customers(engine, path, "UTC")) == []
    assert {k: v["tags"] for k, v in stored_customers(engine).items()} == {
        "c1": {"VIP", "新客", "北京"},
        "c2": {"VIP", "老客"},
    }


def test_dates_as_excel_writes_them_year_first_are_read(engine, tmp_path):
    # Excel on Chinese Windows writes 2026/11/5 14:30; every such row was bad.
    path = write(
        tmp_path,
        "customers.csv",
        "id,signed_up,birthday\n"
        "c1,2026/11/5 14:30,1990/5/1\n"
        "c2,2026年1月5日,1990年12月31日\n"
        "c3,2026/1/5 9:05:07,\n"
        "c4,2026/13/5,\n"
        "c5,,1990/2/30\n"
        "c6,2026-1-5 8:00,5月1日\n"
        "c7,2026/1-5,1990-5-1\n",
    )
    report = import_customers(engine, path, "Asia/Shanghai")
    assert messages(report) == [
        f"{path}:5: `signed_up`: '2026/13/5' is not an ISO 8601 time such as"
        " 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00",
        f"{path}:6: `birthday`: '1990/2/30' is not a date written YYYY-MM-DD or MM-DD: there is"
        " no such day",
        f"{path}:8: `signed_up`: '2026/1-5' is not an ISO 8601 time such as"
        " 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00",
    ]
    stored = stored_customers(engine)
    assert [(c["signed_up_us"], c["birthday"], c["birthday_md"]) for c in stored.values()] == [
        (us(2026, 11, 5, 14, 30, hours=8), "1990-05-01", "05-01"),
        (us(2026, 1, 5, hours=8), "1990-12-31", "12-31"),
        (us(2026, 1, 5, 9, 5, 7, hours=8), None, None),
        (us(2026, 1, 5, 8, 0, hours=8), "05-01", "05-01"),
    ]
    events_path = write(tmp_path, "events.csv", "customer,type,at\nc1,order.paid,2026/11/5 14:30\n")
    assert messages(import_events(engine, events_path, "Asia/Shanghai")) == []
    assert stored_events(engine)[0]["at_us"] == us(2026, 11, 5, 14, 30, hours=8)


def test_dates_excel_wrote_as_its_serial_numbers_are_bad_rows_that_say_so(engine, tmp_path):
    # A date column not formatted as a date is saved as Excel's count of days: the row was bad,
    # saying only that 45962 is not an ISO 8601 time.
    path = write(
        tmp_path,
        "customers.csv",
        "id,signed_up,birthday\nc1,45962.5,\nc2,,32874\nc3,2026,\nc4,,1990\nc5,,45962.\n",
    )
    report = import_customers(engine, path, "UTC")
    iso = "is not an ISO 8601 time such as 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00"
    date = "is not a date written YYYY-MM-DD or MM-DD"
    serial = "it looks like an Excel date serial number, which stands for"
    assert messages(report) == [
        f"{path}:2: `signed_up`: '45962.5' {iso}: {serial} 2025-11-01 12:00; format the column"
        " as a date and time (yyyy-mm-dd hh:mm) before saving",
        f"{path}:3: `birthday`: '32874' {date}: {serial} 1990-01-01; format the column as a date"
        " (yyyy-mm-dd) before saving",
        # A year alone is not taken for a day of 1905.
        f"{path}:4: `signed_up`: '2026' {iso}",
        f"{path}:5: `birthday`: '1990' {date}",
        f"{path}:6: `birthday`: '45962.' {date}",
    ]
    events_path = write(tmp_path, "events.csv", "customer,type,at\nc1,order.paid,45966.75\n")
    assert messages(import_events(engine, events_path, "UTC")) == [
        f"{events_path}:2: `at`: '45966.75' {iso}: {serial} 2025-11-05 18:00; format the column"
        " as a date and time (yyyy-mm-dd hh:mm) before saving"
    ]


def test_only_json_numbers_are_taken_for_excel_s_date_serial_numbers(engine, tmp_path):
    # A JSON string of five digits got the hint of a CSV cell, to format the column before
    # saving, which no spreadsheet wrote; a JSON number, which a program reading a spreadsheet's
    # cell writes, got none.
    path = write(
        tmp_path,
        "customers.jsonl",
        '{"id":"c1","signed_up":"45962"}\n{"id":"c2","signed_up":45962.5}\n'
        '{"id":"c3","birthday":"32874"}\n{"id":"c4","birthday":32874}\n'
        '{"id":"c5","birthday":1990}\n{"id":"c6","signed_up":1762000000}\n',
    )
    report = import_customers(engine, path, "UTC")
    iso = "is not an ISO 8601 time such as 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00"
    date = "must be a date written YYYY-MM-DD or MM-DD, as text, not a number"
    serial = "looks like an Excel date serial number, which stands for"
    program = "have the program that wrote the file write it as text"
    assert messages(report) == [
        f"{path}:1: `signed_up`: '45962' {iso}",
        f"{path}:2: `signed_up` must be an ISO 8601 time as text, not a number: 45962.5 {serial}"
        f' 2025-11-01 12:00; {program}, "2025-11-01 12:00"',
        f"{path}:3: `birthday`: '32874' is not a date written YYYY-MM-DD or MM-DD",
        f'{path}:4: `birthday` {date}: 32874 {serial} 1990-01-01; {program}, "1990-01-01"',
        f"{path}:5: `birthday` {date}",
        f"{path}:6: `signed_up` must be an ISO 8601 time as text, not a number",
    ]
    rows = [{"customer": "c1", "type": "order.paid", "at": at} for at in ("45966", 45966)]
    assert messages(import_event_rows(engine, rows, "UTC")) == [
        f"<demo>:1: `at`: '45966' {iso}",
        f"<demo>:2: `at` must be an ISO 8601 time as text, not a number: 45966 {serial}"
        f' 2025-11-05; {program}, "2025-11-05"',
    ]


def test_empty_columns_a_spreadsheet_writes_are_ignored(engine, tmp_path):
    # Excel writes the columns of the range once used, empty; the header was refused whole.
    path = write(
        tmp_path,
        "customers.csv",
        "id,name,,city,,\r\n"
        "c1,Ann,,Paris,,\r\n"
        "c2,Bo,,Lyon\r\n"
        "c3,Cy,x,Nice,,\r\n"
        "c4,Di,,Metz,,,\r\n"
        "c5,Ed,,Metz,,,1\r\n"
        "c6,Fa\r\n",
    )
    report = import_customers(engine, path, "UTC")
    assert messages(report) == [
        f"{path}:4: column 3 holds 'x', but the header gives it no name",
        f"{path}:6: the row has 7 values but the header has 6 columns",
        f"{path}:7: the row has 2 values but the header names columns up to column 4",
    ]
    stored = stored_customers(engine)
    assert {cid: c["attributes"] for cid, c in stored.items()} == {
        "c1": {"city": "Paris"},
        "c2": {"city": "Lyon"},
        "c4": {"city": "Metz"},
    }
