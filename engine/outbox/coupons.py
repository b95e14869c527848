"""Coupon codes: unique and unguessable.

A code is drawn with `secrets` from 32 letters and digits that cannot be misread for one another
(no 0/O, no 1/I): ten of them hold 50 bits, so guessing a valid code is hopeless. The `coupons`
table's primary key guarantees uniqueness; `record_coupon` draws a new code in the rare case that
one is already taken. `record_coupons` issues many at once: one insert, and one at a time only
if that insert met a conflict.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from engine.storage.tables import coupons

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_DRAWS = 5


def new_code(length: int = 10) -> str:
    """A fresh random code of `length` characters from `ALPHABET`."""
    if length < 6:
        raise ValueError("a coupon code needs at least 6 characters to be unguessable")
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def record_coupons(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    draw: Callable[[], str] = new_code,
) -> list[str]:
    """Insert coupons, each a dict of `record_coupon`'s keyword arguments (without `draw`), and
    return their codes in order.

    All go in with one insert (a tick issues thousands: one at a time, each in its savepoint,
    took a millisecond apiece). Should it meet any conflict (a code already taken, or drawn
    twice), it is undone and the coupons are recorded one at a time by `record_coupon`, which
    draws again where a code is taken and raises any other conflict."""
    if not rows:
        return []
    codes = [draw() for _ in rows]
    try:
        with conn.begin_nested():
            conn.execute(
                coupons.insert(),
                [{**row, "code": code} for row, code in zip(rows, codes, strict=True)],
            )
    except IntegrityError:
        return [record_coupon(conn, **row, draw=draw) for row in rows]
    return codes


def record_coupon(
    conn: Connection,
    *,
    action_id: int,
    customer_id: str,
    template: str,
    worth: float,
    unit: str,
    min_spend: float | None,
    expires_us: int | None,
    created_us: int,
    draw: Callable[[], str] = new_code,
) -> str:
    """Insert the coupon of action `action_id` under a fresh unique code, and return the code.

    Runs inside the caller's transaction; a code already taken is replaced by a new draw (each
    try in a savepoint), any other conflict is raised as it is.
    """
    for _ in range(_DRAWS):
        code = draw()
        try:
            with conn.begin_nested():
                conn.execute(
                    coupons.insert().values(
                        code=code,
                        action_id=action_id,
                        customer_id=customer_id,
                        template=template,
                        worth=worth,
                        unit=unit,
                        min_spend=min_spend,
                        expires_us=expires_us,
                        created_us=created_us,
                    )
                )
        except IntegrityError:
            taken = conn.execute(select(coupons.c.code).where(coupons.c.code == code)).first()
            if taken is None:
                raise
            continue
        return code
    raise RuntimeError(f"{_DRAWS} coupon codes in a row were already taken")
