"""Coupon codes: drawn from an unambiguous alphabet, unique in the database."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.coupons import ALPHABET, new_code, record_coupon
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


def test_a_code_already_taken_is_drawn_again(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        occurrence_id = conn.execute(
            occurrences.insert().values(
                rule="r", customer_id="c1", occurrence_key="k", due_us=T0, status="acted",
                recorded_us=T0,
            )
        ).inserted_primary_key[0]  # fmt: skip
        action_ids = [
            conn.execute(
                actions.insert().values(
                    occurrence_id=occurrence_id, position=position, rule="r", rule_position=0,
                    customer_id="c1", kind="coupon", due_us=T0, at_us=T0, status="sent",
                    detail={},
                )
            ).inserted_primary_key[0]
            for position in range(2)
        ]  # fmt: skip
        draws = iter(["TAKEN23456", "TAKEN23456", "FRESH23456"])
        values = {
            "customer_id": "c1", "template": "birthday", "worth": 30.0, "unit": "money",
            "min_spend": 200.0, "expires_us": T0 + 14 * 86400 * US, "created_us": T0,
            "draw": lambda: next(draws),
        }  # fmt: skip
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
