"""Coupon codes: drawn from an unambiguous alphabet, unique in the database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from engine.outbox.coupons import ALPHABET, new_code, record_coupon, record_coupons
from engine.storage.db import open_database
from engine.storage.tables import actions, coupons, occurrences
from engine.timeutil import US

T0 = 1_800_000_000 * US


def test_codes_are_unambiguous_and_random() -> None:
    assert not set("0O1I") & set(ALPHABET)
    codes = [new_code() for _ in range(2000)]
    assert all(len(code) == 10 and set(code) <= set(ALPHABET) for code in codes)
    assert len(set(codes)) == len(codes)
    assert set("".join(codes)) == set(ALPHABET)
    assert len(new_code(16)) == 16
    with pytest.raises(ValueError, match="at least 6"):
        new_code(4)


def _coupon_actions(conn: Connection, count: int) -> list[int]:
    """`count` coupon actions of one occurrence, for coupons to belong to."""
    occurrence_id = conn.execute(
        occurrences.insert().values(
            rule="r", customer_id="c1", occurrence_key="k", due_us=T0, status="acted",
            recorded_us=T0,
        )
    ).inserted_primary_key[0]  # fmt: skip
    return [
        conn.execute(
            actions.insert().values(
                occurrence_id=occurrence_id, position=position, rule="r", rule_position=0,
                customer_id="c1", kind="coupon", due_us=T0, at_us=T0, status="sent", detail={},
            )
        ).inserted_primary_key[0]
        for position in range(count)
    ]  # fmt: skip


VALUES = {
    "customer_id": "c1", "template": "birthday", "worth": 30.0, "unit": "money",
    "min_spend": 200.0, "expires_us": T0 + 14 * 86400 * US, "created_us": T0,
}  # fmt: skip


def _stored(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        query = select(coupons.c.code, coupons.c.action_id).order_by(coupons.c.action_id)
        return [(code, action_id) for code, action_id in conn.execute(query)]


def test_a_code_already_taken_is_drawn_again(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        action_ids = _coupon_actions(conn, 2)
        draws = iter(["TAKEN23456", "TAKEN23456", "FRESH23456"])
        values: dict[str, Any] = {**VALUES, "draw": lambda: next(draws)}
        assert record_coupon(conn, action_id=action_ids[0], **values) == "TAKEN23456"
        assert record_coupon(conn, action_id=action_ids[1], **values) == "FRESH23456"
        # Another conflict (the action already has its coupon) is not hidden by a new draw.
        draws = iter(["OTHER23456"])
        values["draw"] = lambda: next(draws)
        with pytest.raises(IntegrityError):
            record_coupon(conn, action_id=action_ids[1], **values)
    with engine.connect() as conn:
        stored = conn.execute(select(coupons.c.code, coupons.c.min_spend).order_by(coupons.c.code))
        assert stored.all() == [("FRESH23456", 200.0), ("TAKEN23456", 200.0)]
    engine.dispose()


def test_coupons_issued_together_get_their_own_codes_in_order(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        action_ids = _coupon_actions(conn, 3)
        draws = iter(["AAAA234567", "BBBB234567", "CCCC234567"])
        rows = [{**VALUES, "action_id": action_id} for action_id in action_ids]
        codes = record_coupons(conn, rows, draw=lambda: next(draws))
    assert codes == ["AAAA234567", "BBBB234567", "CCCC234567"]
    assert _stored(engine) == list(zip(codes, action_ids, strict=True))
    engine.dispose()


def test_coupons_issued_together_draw_again_where_a_code_is_taken_or_drawn_twice(
    db_url: str,
) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        first, *action_ids = _coupon_actions(conn, 4)
        record_coupons(conn, [{**VALUES, "action_id": first}], draw=lambda: "TAKEN23456")
        # The batch's first draws: one code already stored, one drawn twice. The insert of all
        # three fails and is undone; one at a time, each conflict is drawn again.
        draws = iter(["TAKEN23456", "TWICE23456", "TWICE23456"])
        redraws = iter(["TAKEN23456", "FRESH23456", "TWICE23456", "TWICE23456", "OTHER23456"])
        batch = [{**VALUES, "action_id": action_id} for action_id in action_ids]
        codes = record_coupons(conn, batch, draw=lambda: next(draws, None) or next(redraws))
        assert codes == ["FRESH23456", "TWICE23456", "OTHER23456"]
        # Any other conflict (an action that has its coupon already) is raised.
        with pytest.raises(IntegrityError):
            record_coupons(conn, batch[:1], draw=lambda: "NEWER23456")
    assert _stored(engine) == list(zip(["TAKEN23456", *codes], [first, *action_ids], strict=True))
    engine.dispose()
