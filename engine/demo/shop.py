"""A synthetic shop for demos, tests and benchmarks: customers and their events, seeded.

`generate_shop` yields customer rows and event rows in the import format of LANGUAGE.md
section 4, ready for `engine.importing.importers` or, through `write_shop`, for `nudge import`. It
only makes data; nothing here touches a database.

The shop is a Chinese online shop (shoes, bags, clothing, beauty, food, home) with some
customers abroad. Customers sign up, fill carts, abandon some, place orders, mostly pay, get
them shipped and delivered, return some, review some (mostly kindly), refer friends, ask to be
told about new arrivals, and some stop buying. Times follow local shopping hours (evening
peak, quiet nights).

Every customer is generated from a seed derived from `(seed, index)` alone: customer `c42` is
the same whether the shop has 100 customers or a million, and only one customer's events are
held at a time, so memory stays flat at any size. Events come grouped by customer, in time
order within each customer (not in global time order); every event has a stable `id`, so
importing the same data twice adds nothing.

Nothing generated can reach a real person: e-mail addresses are at example.com, example.net
and example.org (reserved by RFC 2606), and phone numbers come from ranges that are never given
to subscribers (+86 1000…, and the fiction ranges +1 555 01xx, +44 7700 900xxx,
+61 491 570 xxx).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.errors import DataError
from engine.timeutil import zone

DAY = 86_400
HOUR = 3_600
MINUTE = 60

CUSTOMER_COLUMNS = (
    "id",
    "name",
    "email",
    "phone",
    "birthday",
    "timezone",
    "signed_up",
    "accepts_marketing",
    "tags",
    "language",
    "city",
    "level",
)

# --- the shop's world --------------------------------------------------------------------------

# Where customers live: IANA zone (None: not given, so the shop's zone applies), weight, share
# of Chinese speakers, cities, and phone numbers as (format, lowest, highest) from ranges that
# are never given to anyone (None: no phone numbers generated).
_CN_PHONES = ("+861000{:07d}", 0, 9_999_999)
_REGIONS: tuple[
    tuple[str | None, float, float, tuple[str, ...], tuple[str, int, int] | None], ...
] = (
    (
        "Asia/Shanghai",
        0.78,
        0.97,
        ("上海", "北京", "广州", "深圳", "杭州", "成都", "南京", "武汉", "西安", "重庆", "苏州"),
        _CN_PHONES,
    ),
    (None, 0.10, 0.95, ("上海", "北京", "杭州", "天津", "长沙", "厦门"), _CN_PHONES),
    ("Asia/Hong_Kong", 0.05, 0.75, ("香港",), None),
    (
        "America/Los_Angeles",
        0.03,
        0.25,
        ("Los Angeles", "San Francisco"),
        ("+1310555{:04d}", 100, 199),
    ),
    ("Europe/London", 0.02, 0.2, ("London", "Manchester"), ("+447700{:06d}", 900_000, 900_999)),
    ("Australia/Sydney", 0.02, 0.3, ("Sydney", "Melbourne"), ("+61491570{:03d}", 6, 159)),
)
_REGION_CUM = tuple(itertools.accumulate(r[1] for r in _REGIONS))

_ZH_SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("林", "lin"), ("罗", "luo"), ("高", "gao"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("欧阳", "ouyang"), ("司马", "sima"),
)  # fmt: skip
_ZH_GIVEN = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
    ("艳", "yan"), ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
    ("秀", "xiu"), ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂", "gui"),
    ("文", "wen"), ("华", "hua"), ("建", "jian"), ("玲", "ling"), ("婷", "ting"),
    ("雪", "xue"), ("梅", "mei"), ("晨", "chen"), ("宇", "yu"), ("浩", "hao"),
    ("欣", "xin"), ("怡", "yi"), ("子", "zi"), ("佳", "jia"), ("思", "si"),
    ("雨", "yu"), ("嘉", "jia"), ("俊", "jun"), ("博", "bo"), ("悦", "yue"),
)  # fmt: skip
_EN_FIRST = (
    "Olivia", "Emma", "Amelia", "Sophia", "Mia", "Isla", "Grace", "Chloe", "Ruby", "Lily",
    "Noah", "Oliver", "Jack", "Leo", "James", "Henry", "Lucas", "Ethan", "Mason", "Daniel",
    "Amy", "Kevin", "Vivian", "Jason", "Cindy", "Eric", "Wendy", "Tony",
)  # fmt: skip
_EN_LAST = (
    "Smith", "Jones", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Johnson", "Walker",
    "White", "Martin", "Clarke", "Wong", "Chan", "Lee", "Ng", "Cheung", "Lau", "Tan", "Chen",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")

# Categories: weight, price points in RMB, chance that an order comes back.
_CATEGORIES: dict[str, tuple[float, tuple[float, ...], float]] = {
    "clothing": (0.30, (59.9, 89.0, 129.0, 159.0, 199.0, 269.0, 399.0, 599.0), 0.14),
    "shoes": (0.18, (129.0, 199.0, 259.0, 329.0, 459.0, 699.0, 899.0), 0.12),
    "beauty": (0.18, (49.9, 79.0, 129.0, 199.0, 299.0, 459.0, 699.0), 0.03),
    "food": (0.14, (19.9, 29.9, 39.9, 59.9, 88.0, 128.0, 198.0), 0.01),
    "bags": (0.10, (99.0, 159.0, 239.0, 399.0, 699.0, 1299.0, 1899.0), 0.08),
    "home": (0.10, (29.9, 49.9, 79.0, 129.0, 199.0, 349.0), 0.04),
}
_CATEGORY_NAMES = tuple(_CATEGORIES)
_CATEGORY_CUM = tuple(itertools.accumulate(c[0] for c in _CATEGORIES.values()))

_LAUNCH_NAMES = {
    "clothing": ("亚麻衬衫 Linen shirt", "羊毛大衣 Wool coat", "真丝连衣裙 Silk dress"),
    "shoes": ("小白鞋 White sneakers", "缓震跑鞋 Running shoes", "切尔西靴 Chelsea boots"),
    "beauty": ("保湿精华 Hydrating serum", "防晒乳 Sunscreen SPF50", "修护面霜 Repair cream"),
    "food": ("云南咖啡豆 Yunnan coffee beans", "坚果礼盒 Nut gift box", "手工月饼 Mooncakes"),
    "bags": ("通勤托特包 Tote bag", "迷你斜挎包 Mini crossbody", "双肩包 Backpack"),
    "home": ("香薰蜡烛 Scented candle", "亚麻床品 Linen bedding", "陶瓷茶具 Tea set"),
}

# Customer kinds: weight, orders per year, spend multiplier, member level in the old system.
_KINDS: tuple[tuple[float, float, float, str], ...] = (
    (0.35, 0.5, 1.0, "regular"),  # bought once or twice
    (0.38, 1.8, 1.0, "regular"),  # casual
    (0.19, 4.5, 1.2, "silver"),  # regular
    (0.07, 10.0, 1.5, "gold"),  # loyal
    (0.01, 22.0, 3.0, "gold"),  # big spender
)
_KIND_CUM = tuple(itertools.accumulate(k[0] for k in _KINDS))

# Local hour of day of shopping sessions: a lunch bump and an evening peak, quiet nights.
_HOUR_WEIGHTS = (2, 1, 0.5, 0.3, 0.3, 0.5, 1, 2, 3, 4, 5, 5, 6, 5, 4, 4, 4, 4, 4, 5, 7, 8, 7, 4)
_HOUR_CUM = tuple(itertools.accumulate(_HOUR_WEIGHTS))
_RATINGS = (5, 4, 3, 2, 1)
_RATING_CUM_HAPPY = tuple(itertools.accumulate((0.62, 0.24, 0.08, 0.035, 0.025)))
_RATING_CUM_RETURNED = tuple(itertools.accumulate((0.1, 0.15, 0.3, 0.25, 0.2)))


@dataclass(frozen=True)
class _Customer:
    """One generated customer: the import row and what drives their behaviour."""

    row: dict[str, Any]
    zone: ZoneInfo  # the zone their local times are read in
    signed_up: int  # epoch seconds
    orders_per_year: float
    spend: float
    favourites: tuple[str, ...]
    return_risk: float  # multiplier of the category's return rate
    churn_at: float | None  # epoch seconds after which they never come back
    subscribed: bool  # pressed "notify me" for new arrivals
    referrals: int


@dataclass(frozen=True)
class _Launch:
    at: int
    category: str
    name: str
    product_id: str


@dataclass(frozen=True)
class _Shop:
    seed: int
    start: int
    end: int
    zone: ZoneInfo
    launches: tuple[_Launch, ...]


def generate_shop(
    seed: int = 7,
    customers: int = 3000,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    tz: str = "Asia/Shanghai",
) -> tuple[Iterator[dict[str, Any]], Iterator[dict[str, Any]]]:
    """Customer rows and event rows of a synthetic shop, both generated lazily.

    `start` and `end` bound the events, `[start, end)`; naive datetimes are read in `tz`, the
    shop's zone. Defaults: the calendar year 2026, shop-local. Customers are `c1`…`cN`; the
    same `seed` always gives the same data, and the first N customers of a larger shop are the
    N customers of a smaller one.
    """
    shop_zone = zone(tz)
    start = start or dt.datetime(2026, 1, 1)
    end = end or dt.datetime(2027, 1, 1)
    start_s = _epoch(start, shop_zone)
    end_s = _epoch(end, shop_zone)
    if end_s <= start_s:
        raise DataError(f"the demo period is empty: end {end} is not after start {start}")
    if customers < 0:
        raise DataError(f"the number of customers cannot be negative (got {customers})")
    shop = _Shop(seed, start_s, end_s, shop_zone, _launches(seed, start_s, end_s, shop_zone))

    def customer_rows() -> Iterator[dict[str, Any]]:
        for index in range(1, customers + 1):
            yield _customer(shop, index).row

    def event_rows() -> Iterator[dict[str, Any]]:
        for index in range(1, customers + 1):
            yield from _events(shop, index)

    return customer_rows(), event_rows()


def write_shop(
    directory: Path,
    seed: int = 7,
    customers: int = 3000,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    tz: str = "Asia/Shanghai",
) -> tuple[Path, Path]:
    """Write `customers.csv` and `events.jsonl` of `generate_shop(...)` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    rows, events = generate_shop(seed, customers, start, end, tz)
    customers_path = directory / "customers.csv"
    events_path = directory / "events.jsonl"
    with customers_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CUSTOMER_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _csv_cell(value) for key, value in row.items()})
    with events_path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, ensure_ascii=False))
            out.write("\n")
    return customers_path, events_path


# --- customers ---------------------------------------------------------------------------------


def _rng(seed: int, index: int) -> random.Random:
    """The customer's own random stream: depends on the shop's seed and the index only."""
    return random.Random(f"nudge-demo/{seed}/{index}")


def _customer(shop: _Shop, index: int, rng: random.Random | None = None) -> _Customer:
    rng = rng or _rng(shop.seed, index)
    region = _REGIONS[_pick(rng, _REGION_CUM)]
    tz_name, _, zh_share, cities, phones = region
    local_zone = zone(tz_name) if tz_name else shop.zone
    chinese = rng.random() < zh_share
    if chinese:
        surname, surname_py = rng.choice(_ZH_SURNAMES)
        given = [rng.choice(_ZH_GIVEN) for _ in range(rng.choice((1, 2, 2)))]
        name = surname + "".join(g[0] for g in given)
        handle = f"{''.join(g[1] for g in given)}.{surname_py}"
    else:
        first, last = rng.choice(_EN_FIRST), rng.choice(_EN_LAST)
        name = f"{first} {last}"
        handle = f"{first}.{last}".lower()
    # Three years of customers before the period, a steady flow of new ones during it.
    if rng.random() < 0.6:
        signed_up = shop.start - rng.randrange(1, 3 * 365 * DAY)
    else:
        signed_up = shop.start + rng.randrange(0, shop.end - shop.start)
    _, orders_per_year, spend, level = _KINDS[_pick(rng, _KIND_CUM)]
    favourites = tuple(dict.fromkeys(_CATEGORY_NAMES[_pick(rng, _CATEGORY_CUM)] for _ in range(2)))
    tags = [t for t, p in (("wechat", 0.12), ("douyin", 0.06)) if rng.random() < p]
    if spend >= 3 and rng.random() < 0.5:
        tags.append("vip")
    row: dict[str, Any] = {
        "id": f"c{index}",
        "name": name if rng.random() < 0.97 else None,
        "email": f"{handle}.{index}@{rng.choice(_EMAIL_DOMAINS)}" if rng.random() < 0.8 else None,
        "phone": _phone(rng, phones),
        "birthday": _birthday(rng),
        "timezone": tz_name,
        "signed_up": _iso(signed_up, local_zone),
        "accepts_marketing": rng.random() < 0.85,
        "tags": ",".join(tags) or None,
        "language": "zh" if chinese else "en",
        "city": rng.choice(cities),
        "level": level,
    }
    serial_returner = rng.random() < 0.04
    return _Customer(
        row=row,
        zone=local_zone,
        signed_up=signed_up,
        orders_per_year=orders_per_year * rng.uniform(0.6, 1.4),
        spend=spend,
        favourites=favourites,
        return_risk=5.0 if serial_returner else rng.uniform(0.5, 1.5),
        churn_at=shop.start + rng.uniform(-0.3, 1.0) * (shop.end - shop.start)
        if rng.random() < 0.35
        else None,
        subscribed=rng.random() < 0.15,
        referrals=rng.choice((1, 1, 2, 3)) if rng.random() < 0.06 else 0,
    )


def _phone(rng: random.Random, phones: tuple[str, int, int] | None) -> str | None:
    if phones is None or rng.random() < 0.1:
        return None
    template, low, high = phones
    return template.format(rng.randint(low, high))


def _birthday(rng: random.Random) -> str | None:
    """Most customers give a birthday: some with the year, some only month and day."""
    roll = rng.random()
    if roll < 0.25:
        return None
    if roll < 0.255:  # born on 29 February
        year = rng.choice((1984, 1988, 1992, 1996, 2000, 2004))
        return "02-29" if rng.random() < 0.5 else f"{year}-02-29"
    day = dt.date(2001, 1, 1) + dt.timedelta(days=rng.randrange(365))
    if rng.random() < 0.45:
        return day.strftime("%m-%d")
    return day.replace(year=rng.randint(1962, 2006)).isoformat()


# --- events ------------------------------------------------------------------------------------


def _launches(seed: int, start: int, end: int, shop_zone: ZoneInfo) -> tuple[_Launch, ...]:
    """The shop's new products: one every one to three weeks, at 10:00 shop time."""
    rng = random.Random(f"nudge-demo/{seed}/launches")
    launches: list[_Launch] = []
    day = _local_date(start, shop_zone) + dt.timedelta(days=rng.randint(3, 10))
    while (at := _wall(day, 10, 0, shop_zone)) < end:
        category = _CATEGORY_NAMES[_pick(rng, _CATEGORY_CUM)]
        number = len(launches) + 1
        launches.append(_Launch(at, category, rng.choice(_LAUNCH_NAMES[category]), f"p{number}"))
        day += dt.timedelta(days=rng.randint(7, 21))
    return tuple(launches)


def _events(shop: _Shop, index: int) -> Iterator[dict[str, Any]]:
    rng = _rng(shop.seed, index)
    customer = _customer(shop, index, rng)
    begin = max(shop.start, customer.signed_up)
    stop = shop.end if customer.churn_at is None else min(shop.end, int(customer.churn_at))
    raw: list[tuple[int, str, dict[str, Any]]] = []

    rate = customer.orders_per_year * 1.5 / 365 / DAY  # sessions per second; some are abandoned
    t = float(begin)
    if customer.signed_up >= shop.start and rng.random() < 0.4:
        t += rng.uniform(0, 3 * DAY)  # many new customers shop in their first days
    else:
        t += rng.expovariate(rate)
    session = 0
    while t < stop:
        session += 1
        _session(rng, customer, f"o{index}-{session}", int(t), raw)
        t += rng.expovariate(rate)

    for launch in shop.launches:
        if customer.subscribed and begin <= launch.at and launch.category in customer.favourites:
            props = {"product_id": launch.product_id, "name": launch.name}
            raw.append((launch.at, "product.launched", {"category": launch.category, **props}))
    for _ in range(customer.referrals):
        at = max(begin, _daytime(rng, rng.uniform(begin, shop.end), customer.zone))
        raw.append((at, "customer.referred", {"source": rng.choice(("wechat", "link", "qr"))}))

    raw.sort(key=lambda item: item[0])
    number = 0
    for at, kind, props in raw:
        if shop.start <= at < shop.end:
            number += 1
            yield {
                "id": f"d{shop.seed}-c{index}-{number}",
                "customer": customer.row["id"],
                "type": kind,
                "at": _iso(at, customer.zone),
                **props,
            }


def _session(
    rng: random.Random,
    customer: _Customer,
    order_id: str,
    t: int,
    out: list[tuple[int, str, dict[str, Any]]],
) -> None:
    """One visit: cart updates, and perhaps an order with its whole life after it."""
    category = (
        rng.choice(customer.favourites)
        if rng.random() < 0.7
        else _CATEGORY_NAMES[_pick(rng, _CATEGORY_CUM)]
    )
    _, prices, return_rate = _CATEGORIES[category]
    items = rng.choice((1, 1, 1, 2, 2, 3))
    total = round(sum(rng.choice(prices) for _ in range(items)) * customer.spend, 2)
    at = max(t, _daytime(rng, t, customer.zone))
    for n in range(rng.choice((1, 1, 2, 3))):
        if n:
            at += rng.randint(1, 15) * MINUTE + rng.randrange(MINUTE)
        out.append((at, "cart.updated", {"category": category, "items": items, "total": total}))

    roll = rng.random()
    if roll < 0.25:
        return  # abandoned for good
    # Most order at once; some come back to the cart hours later.
    at += rng.randint(1, 20) * MINUTE if roll > 0.33 else rng.randint(3 * HOUR, 30 * HOUR)
    order = {"order_id": order_id, "category": category, "total": total}
    out.append((at, "order.placed", order))
    roll = rng.random()
    if roll < 0.06:
        return  # never paid
    at += rng.randint(1, 15) * MINUTE if roll > 0.1 else rng.randint(90 * MINUTE, 20 * HOUR)
    out.append((at, "order.paid", order))
    at = _business_hours(at + rng.randint(4 * HOUR, 40 * HOUR), customer.zone, rng)
    out.append((at, "order.shipped", order))
    at = _business_hours(at + rng.randint(1 * DAY, 5 * DAY), customer.zone, rng)
    out.append((at, "order.received", order))
    returned = rng.random() < min(0.9, return_rate * customer.return_risk)
    if returned:
        returned_at = _daytime(rng, at + rng.randint(1, 7) * DAY, customer.zone)
        out.append((returned_at, "order.returned", order))
    if rng.random() < (0.45 if returned else 0.3):
        ratings = _RATING_CUM_RETURNED if returned else _RATING_CUM_HAPPY
        review = {
            "order_id": order_id,
            "category": category,
            "rating": _RATINGS[_pick(rng, ratings)],
        }
        out.append(
            (_daytime(rng, at + rng.randint(1, 14) * DAY, customer.zone), "review.posted", review)
        )


# --- time helpers ------------------------------------------------------------------------------


def _pick(rng: random.Random, cumulative: tuple[float, ...]) -> int:
    """An index drawn with the weights whose running totals are `cumulative`."""
    roll = rng.random() * cumulative[-1]
    for i, edge in enumerate(cumulative):
        if roll < edge:
            return i
    return len(cumulative) - 1


def _epoch(moment: dt.datetime, shop_zone: ZoneInfo) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=shop_zone)
    return int(moment.timestamp())


def _local_date(t: float, local: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(t, local).date()


def _wall(day: dt.date, hour: int, minute: int, local: ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=local).timestamp())


def _daytime(rng: random.Random, t: float, local: ZoneInfo) -> int:
    """A time on the local day of `t`, at an hour people shop."""
    hour = _pick(rng, _HOUR_CUM)
    return _wall(_local_date(t, local), hour, rng.randrange(60), local) + rng.randrange(MINUTE)


def _business_hours(t: int, local: ZoneInfo, rng: random.Random) -> int:
    """`t`, or the next 09:00–19:00 local slot when couriers work, if `t` falls outside it."""
    moment = dt.datetime.fromtimestamp(t, local)
    if 9 <= moment.hour < 19:
        return t
    day = moment.date() + dt.timedelta(days=1 if moment.hour >= 19 else 0)
    return _wall(day, rng.randint(9, 11), rng.randrange(60), local) + rng.randrange(MINUTE)


def _iso(t: int, local: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(t, local).isoformat(timespec="seconds")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
