#!/usr/bin/env python3
"""Seed the demo family (docs/local-stack.md) into the database named by DATABASE_URL.

What it writes (idempotent: running it again changes nothing):
  * users Alok (1), Amol (2), Atul (3), Rashmi (4), e-mail <name>@example.com,
    password "password123" (bcrypt);
  * categories Food, Transportation, Utilities, Entertainment (with descriptions);
  * payment methods Cash, Credit Card, Debit Card, UPI, Other;
  * when the demo users have no expenses yet: about 600 realistic expenses over the last
    two years (monthly bills, frequent small food purchases, ...), from a seeded RNG.

With --expenses N it also tops the expenses table up to at least N rows in total (only
the difference is added, with COPY, 10k rows per batch) for load tests and benchmarks.
The busiest demo user (Alok) gets a third of those rows; the others share the rest.

Apply the schema first (scripts/bootstrap_schema.py; the app also does it at start-up).

Run from the repository root:
    .venv/bin/python scripts/seed_demo.py
    .venv/bin/python scripts/seed_demo.py --expenses 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import math
import random
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import cast

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from config import ConfigError, load_database_url
from database import Unreachable, connect
from passwords import hash_password

PROG = "seed_demo"
DEMO_PASSWORD = "password123"
BCRYPT_ROUNDS = 12
ADVISORY_LOCK_KEY = 0x5EED_DE30  # one seeder at a time per database

DEMO_USERS = [(1, "Alok"), (2, "Amol"), (3, "Atul"), (4, "Rashmi")]
CATEGORIES = [
    (1, "Food", "Groceries, restaurants, take-away and snacks"),
    (2, "Transportation", "Fuel, cabs, autos, metro and bus fares"),
    (3, "Utilities", "Electricity, water, gas, internet and mobile bills"),
    (4, "Entertainment", "Movies, streaming subscriptions, events and outings"),
]
PAYMENT_METHODS = [(1, "Cash"), (2, "Credit Card"), (3, "Debit Card"), (4, "UPI"), (5, "Other")]

# Bulk rows (--expenses): share of each demo user, in DEMO_USERS order. Alok gets 3/9, i.e.
# ~16.7k rows per year at 100k rows over two years (the benchmark's busiest user).
BULK_USER_WEIGHTS = [3, 2, 2, 2]
# category -> (share of bulk rows, median amount, spread, [(description, weight)], [(payment method, weight)])
BULK_PROFILE = {
    "Food": (
        0.45,
        280.0,
        0.8,
        [
            ("Groceries", 4),
            ("Vegetables and fruit", 3),
            ("Restaurant dinner", 2),
            ("Swiggy order", 2),
            ("Zomato order", 2),
            ("Tea and snacks", 3),
            ("Bakery", 1),
            ("Milk and bread", 2),
        ],
        [("Cash", 3), ("UPI", 5), ("Credit Card", 2), ("Debit Card", 1)],
    ),
    "Transportation": (
        0.25,
        220.0,
        0.9,
        [
            ("Petrol", 3),
            ("Uber ride", 2),
            ("Ola ride", 2),
            ("Auto rickshaw", 3),
            ("Metro card recharge", 2),
            ("Bus ticket", 1),
            ("Parking", 1),
        ],
        [("Cash", 3), ("UPI", 5), ("Credit Card", 1), ("Debit Card", 1)],
    ),
    "Utilities": (
        0.15,
        1100.0,
        0.6,
        [
            ("Electricity bill", 3),
            ("Internet bill", 2),
            ("Mobile recharge", 3),
            ("Water bill", 1),
            ("Gas cylinder", 1),
            ("DTH recharge", 1),
        ],
        [("UPI", 4), ("Debit Card", 2), ("Credit Card", 2), ("Other", 1)],
    ),
    "Entertainment": (
        0.15,
        450.0,
        0.8,
        [
            ("Movie tickets", 3),
            ("Netflix subscription", 1),
            ("Spotify subscription", 1),
            ("Concert tickets", 1),
            ("Bowling", 1),
            ("Books", 1),
            ("Weekend outing", 1),
        ],
        [("Credit Card", 4), ("UPI", 3), ("Debit Card", 1), ("Cash", 1)],
    ),
}


class SeedError(Exception):
    """A failure explained in one line; main() prints it and exits 1."""


def say(message: str) -> None:
    print(f"{PROG}: {message}", flush=True)


# --------------------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------------------
def database_url() -> str:
    """DATABASE_URL read like the app reads it (environment, then .env; ENV_FILE)."""
    try:
        return load_database_url()
    except ConfigError as error:
        raise SeedError(str(error)) from None


def describe_target(url: str) -> str:
    """host:port/dbname as user, for messages; never the password."""
    try:
        params = psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError:
        return "an unparsable DATABASE_URL"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    text = f"{host}:{port}/{params.get('dbname') or params.get('user') or 'postgres'}"
    if params.get("user"):
        text += f" as {params['user']}"
    return text


@contextmanager
def connected(url: str) -> Iterator[psycopg2.extensions.connection]:
    """The database, closed at the end (which also releases the advisory lock)."""
    target = describe_target(url)
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(connect(url, application_name=PROG, timeout=10))
        except Unreachable as error:
            raise SeedError(f"cannot connect to PostgreSQL at {target}: {error}") from None
        say(f"connected to {target}")
        yield conn


def check_schema(conn: psycopg2.extensions.connection) -> None:
    with conn.cursor() as cur:
        cur.execute("""
            select t.name from unnest(array['users', 'categories', 'payment_methods',
                   'expenses', 'expense_monthly_totals']) as t(name)
             where to_regclass('public.' || t.name) is null""")
        missing = [r[0] for r in cur.fetchall()]
        cur.execute("select to_regprocedure('public.rebuild_expense_monthly_totals()') is null")
        no_functions = cur.fetchone()[0]
    conn.rollback()
    if missing:
        raise SeedError(
            f"schema not applied (missing table public.{missing[0]}); run "
            "scripts/bootstrap_schema.py or start the app once, then seed"
        )
    if no_functions:
        raise SeedError(
            "sql/R50_dashboards.sql not applied (no totals trigger); run "
            "scripts/bootstrap_schema.py or start the app once, then seed"
        )


# --------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------
def insert_missing(cur, statement: str, rows) -> int:
    """Run an `on conflict do nothing` insert per row; how many rows were new."""
    added = 0
    for row in rows:
        cur.execute(statement, row)
        added += cur.rowcount
    return added


def fix_sequence(cur, table: str) -> None:
    cur.execute(
        f"select setval(pg_get_serial_sequence('public.{table}', 'id'), "
        f"(select max(id) from public.{table})) where exists (select from public.{table})"
    )


def seed_reference(conn) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute(
            "select lower(name) from public.users where lower(name) = any(%s)",
            ([n.lower() for _, n in DEMO_USERS],),
        )
        present = {r[0] for r in cur.fetchall()}
        missing = [(i, n) for i, n in DEMO_USERS if n.lower() not in present]
        users_added = 0
        if missing:
            say(
                f"hashing passwords for {len(missing)} demo user(s) (bcrypt, {BCRYPT_ROUNDS} rounds)"
            )
            for user_id, name in missing:
                cur.execute(
                    "insert into public.users (id, name, email, password_hash) "
                    "values (%s, %s, %s, %s) on conflict do nothing",
                    (
                        user_id,
                        name,
                        f"{name.lower()}@example.com",
                        hash_password(DEMO_PASSWORD, BCRYPT_ROUNDS),
                    ),
                )
                users_added += cur.rowcount
        fix_sequence(cur, "users")

        categories_added = insert_missing(
            cur,
            "insert into public.categories (id, name, description) "
            "values (%s, %s, %s) on conflict do nothing",
            CATEGORIES,
        )
        fix_sequence(cur, "categories")
        methods_added = insert_missing(
            cur,
            "insert into public.payment_methods (id, name) values (%s, %s) on conflict do nothing",
            PAYMENT_METHODS,
        )
        fix_sequence(cur, "payment_methods")
    conn.commit()
    say(f"users: {users_added} added, {len(DEMO_USERS) - users_added} already present")
    say(
        f"categories: {categories_added} added, {len(CATEGORIES) - categories_added} already present"
    )
    say(
        f"payment methods: {methods_added} added, "
        f"{len(PAYMENT_METHODS) - methods_added} already present"
    )
    return {"users": users_added, "categories": categories_added, "methods": methods_added}


def lookup_ids(conn) -> tuple[list[int], dict[str, int], dict[str, int]]:
    """Demo user ids (in DEMO_USERS order), category and payment-method ids by name."""
    with conn.cursor() as cur:
        cur.execute(
            "select lower(name), id from public.users where lower(name) = any(%s)",
            ([n.lower() for _, n in DEMO_USERS],),
        )
        by_name = dict(cur.fetchall())
        cur.execute(
            "select name, id from public.categories where name = any(%s)",
            ([c[1] for c in CATEGORIES],),
        )
        categories = dict(cur.fetchall())
        cur.execute(
            "select name, id from public.payment_methods where name = any(%s)",
            ([m[1] for m in PAYMENT_METHODS],),
        )
        methods = dict(cur.fetchall())
    conn.rollback()
    user_ids = []
    for expected_id, name in DEMO_USERS:
        actual = by_name.get(name.lower())
        if actual is None:
            say(
                f"warning: demo user {name} could not be created (its e-mail is taken?); "
                "no expenses for it"
            )
        else:
            if actual != expected_id:
                say(f"warning: demo user {name} has id {actual}, not {expected_id}")
            user_ids.append(actual)
    if not user_ids:
        raise SeedError("none of the demo users exists; cannot seed expenses")
    missing = [c[1] for c in CATEGORIES if c[1] not in categories]
    if missing:
        raise SeedError(f"category {missing[0]} is missing")
    return user_ids, categories, methods


# --------------------------------------------------------------------------------------
# Expenses
# --------------------------------------------------------------------------------------
def _months_back(today: dt.date, n: int) -> dt.date:
    """First day of the month n months before today's month."""
    index = today.year * 12 + today.month - 1 - n
    return dt.date(index // 12, index % 12 + 1, 1)


def _day(rng: random.Random, month_start: dt.date, lo: int = 1, hi: int = 28) -> dt.date:
    return month_start + dt.timedelta(days=rng.randint(lo, hi) - 1)


def _price(rng: random.Random, lo: float, hi: float, whole: bool = False) -> float:
    value = rng.uniform(lo, hi)
    if whole or rng.random() < 0.55:  # most shop prices are whole rupees
        return float(max(1, round(value)))
    return round(value, 2)


# (description, category, payment methods, times per month (expected), amount range, whole)
REALISTIC_PLAN = [
    # Utilities: bills once a month, or every second or third month, on a usual day.
    ("Electricity bill", "Utilities", ["UPI", "Debit Card"], "monthly", (900, 3800), False),
    ("Internet bill", "Utilities", ["Credit Card", "UPI"], "monthly", (699, 1199), True),
    ("Mobile recharge", "Utilities", ["UPI"], "bimonthly", (479, 899), True),
    ("Gas cylinder", "Utilities", ["Cash", "UPI"], "bimonthly", (880, 1150), True),
    ("Water bill", "Utilities", ["UPI", "Cash"], "quarterly", (250, 900), False),
    # Food: frequent and small.
    ("Groceries", "Food", ["UPI", "Debit Card", "Cash"], 0.9, (350, 2800), False),
    ("Vegetables and fruit", "Food", ["Cash", "UPI"], 0.4, (80, 600), True),
    ("Restaurant dinner", "Food", ["Credit Card", "UPI"], 0.25, (450, 2600), False),
    ("Swiggy order", "Food", ["UPI", "Credit Card"], 0.35, (180, 850), False),
    ("Tea and snacks", "Food", ["Cash", "UPI"], 0.3, (40, 250), True),
    # Transportation.
    ("Petrol", "Transportation", ["Credit Card", "UPI"], 0.35, (500, 2500), False),
    ("Uber ride", "Transportation", ["UPI", "Credit Card"], 0.2, (120, 650), False),
    ("Auto rickshaw", "Transportation", ["Cash", "UPI"], 0.25, (40, 220), True),
    ("Metro card recharge", "Transportation", ["UPI", "Debit Card"], 0.1, (200, 500), True),
    # Entertainment.
    ("Netflix subscription", "Entertainment", ["Credit Card"], 0.2, (199, 649), True),
    ("Movie tickets", "Entertainment", ["Credit Card", "UPI"], 0.18, (300, 1400), True),
    ("Weekend outing", "Entertainment", ["UPI", "Cash"], 0.05, (800, 4500), False),
    ("Concert tickets", "Entertainment", ["Credit Card", "Other"], 0.02, (1500, 6000), True),
]
# How much each demo user uses the "frequent" lines (Alok busiest, Rashmi thriftiest).
USER_ACTIVITY = [1.25, 1.0, 0.9, 0.85]


def realistic_expenses(user_ids, today: dt.date, seed: int) -> Iterator[tuple]:
    """About 600 rows for 4 users: 24 months (this one up to today)."""
    rng = random.Random(seed)
    for u_index, user_id in enumerate(user_ids):
        activity = USER_ACTIVITY[u_index % len(USER_ACTIVITY)]
        bill_day = {d: rng.randint(3, 12) for d, *_ in REALISTIC_PLAN}
        for back in range(23, -1, -1):
            month = _months_back(today, back)
            last_day = (
                (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
            ).day
            for desc, category, methods, freq, (lo, hi), whole in REALISTIC_PLAN:
                if freq == "monthly":
                    count, days = (1 if rng.random() < 0.9 else 0), [bill_day[desc]]
                elif freq in ("bimonthly", "quarterly"):
                    every = 2 if freq == "bimonthly" else 3
                    count = 1 if (month.month + u_index) % every == 0 else 0
                    days = [bill_day[desc]]
                else:
                    expected = cast(float, freq) * activity
                    count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
                    days = [rng.randint(1, last_day) for _ in range(count)]
                for i in range(count):
                    day_no = min(days[i % len(days)] + rng.randint(-1, 1), last_day)
                    date = month.replace(day=max(1, day_no))
                    if date > today:
                        continue
                    yield (
                        user_id,
                        category,
                        rng.choice(methods),
                        _price(rng, lo, hi, whole),
                        desc,
                        date,
                    )


def bulk_expenses(
    user_ids, categories_by_name, methods_by_name, count: int, today: dt.date, rng: random.Random
) -> Iterator[str]:
    """`count` COPY text lines spread over the demo users and the last two years."""
    weights = BULK_USER_WEIGHTS[: len(user_ids)]
    cat_names = list(BULK_PROFILE)
    cat_weights = [BULK_PROFILE[c][0] for c in cat_names]
    profiles = {}
    for name in cat_names:
        _, median, spread, descs, methods = BULK_PROFILE[name]
        known = [(methods_by_name.get(m), w) for m, w in methods]
        known = [(str(i), w) for i, w in known if i is not None] or [("\\N", 1)]
        profiles[name] = (
            str(categories_by_name[name]),
            math.log(median),
            spread,
            [d for d, _ in descs],
            [w for _, w in descs],
            [m for m, _ in known],
            [w for _, w in known],
        )
    start = today - dt.timedelta(days=730)
    str_users = [str(u) for u in user_ids]
    users = rng.choices(str_users, weights=weights, k=count)
    cats = rng.choices(cat_names, weights=cat_weights, k=count)
    for user, cat in zip(users, cats):
        cat_id, mu, sigma, descriptions, dweights, method_ids, mweights = profiles[cat]
        amount = min(max(rng.lognormvariate(mu, sigma), 10.0), 50000.0)
        amount_text = f"{amount:.0f}.00" if rng.random() < 0.5 else f"{amount:.2f}"
        date = start + dt.timedelta(days=rng.randint(0, 730))
        yield (
            f"{user}\t{cat_id}\t{rng.choices(method_ids, mweights)[0]}\t{amount_text}\t"
            f"{rng.choices(descriptions, dweights)[0]}\t{date.isoformat()}\n"
        )


COPY_SQL = (
    "copy public.expenses (user_id, category_id, payment_method_id, amount, "
    "description, date) from stdin"
)


def count_expenses(conn, user_ids=None) -> int:
    with conn.cursor() as cur:
        if user_ids is None:
            cur.execute("select count(*) from public.expenses")
        else:
            cur.execute(
                "select count(*) from public.expenses where user_id = any(%s)", (list(user_ids),)
            )
        return cur.fetchone()[0]


def seed_realistic(conn, user_ids, categories, methods, seed: int) -> int:
    existing = count_expenses(conn, user_ids)
    if existing:
        conn.rollback()
        say(f"expenses: the demo users already have {existing}; realistic spread skipped")
        return 0
    rows = list(realistic_expenses(user_ids, dt.date.today(), seed))
    buffer = io.StringIO()
    for user_id, category, method, amount, desc, date in rows:
        method_id = methods.get(method)
        buffer.write(
            f"{user_id}\t{categories[category]}\t"
            f"{method_id if method_id is not None else chr(92) + 'N'}\t"
            f"{amount:.2f}\t{desc}\t{date.isoformat()}\n"
        )
    buffer.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(COPY_SQL, buffer)
    conn.commit()
    say(f"expenses: added {len(rows)} realistic expenses over the last two years")
    return len(rows)


def seed_bulk(conn, target: int, user_ids, categories, methods, batch_size: int, seed: int) -> int:
    existing = count_expenses(conn)
    conn.rollback()
    need = target - existing
    if need <= 0:
        say(f"expenses: {existing} present, at least {target} requested; nothing to add")
        return 0
    from tqdm import tqdm

    say(
        f"expenses: {existing} present, adding {need} to reach {target} "
        f"(COPY, {batch_size} rows per batch, totals kept by the trigger)"
    )
    rng = random.Random(seed * 1_000_003 + existing)
    today = dt.date.today()
    tty = sys.stderr.isatty()
    batches = (need + batch_size - 1) // batch_size
    started = time.monotonic()
    added = 0
    with tqdm(total=need, unit="row", unit_scale=True, disable=not tty, file=sys.stderr) as bar:
        for batch_no in range(1, batches + 1):
            size = min(batch_size, need - added)
            buffer = io.StringIO()
            buffer.writelines(bulk_expenses(user_ids, categories, methods, size, today, rng))
            buffer.seek(0)
            with conn.cursor() as cur:
                cur.copy_expert(COPY_SQL, buffer)
            conn.commit()  # each batch stands: a re-run adds the rest
            added += size
            bar.update(size)
            if not tty:
                say(
                    f"  batch {batch_no}/{batches}: {added}/{need} rows "
                    f"({time.monotonic() - started:.1f} s)"
                )
    elapsed = time.monotonic() - started
    say(
        f"expenses: added {added} rows in {elapsed:.1f} s ({added / max(elapsed, 1e-9):,.0f} rows/s)"
    )
    return added


# --------------------------------------------------------------------------------------
def summary(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("""select (select count(*) from public.users),
                              (select count(*) from public.categories),
                              (select count(*) from public.payment_methods),
                              (select count(*) from public.expenses),
                              (select count(*) from public.expense_monthly_totals)""")
        users, cats, methods, expenses, totals = cur.fetchone()
    conn.rollback()
    say(
        f"done: {users} users, {cats} categories, {methods} payment methods, "
        f"{expenses} expenses ({totals} monthly totals rows)"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/seed_demo.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Seed the demo data into the database of DATABASE_URL: users Alok, Amol,\n"
            f"Atul and Rashmi (<name>@example.com, password '{DEMO_PASSWORD}'), the\n"
            "categories, the payment methods and, when the demo users have no expenses\n"
            "yet, about 600 realistic expenses over the last two years.\n"
            "Idempotent: existing rows are left alone, a second run changes nothing."
        ),
        epilog=(
            "DATABASE_URL is read like the app reads it (environment, then .env; ENV_FILE\n"
            "picks another file). Apply the schema first: scripts/bootstrap_schema.py, or\n"
            "start the app once.\n\n"
            "examples:\n"
            "  .venv/bin/python scripts/seed_demo.py                    # demo data\n"
            "  .venv/bin/python scripts/seed_demo.py --expenses 100000  # + load-test rows\n"
            "  DATABASE_URL=postgresql://postgres@127.0.0.1:54322/postgres \\\n"
            "      .venv/bin/python scripts/seed_demo.py\n\n"
            "exit status: 0 on success, 1 with a one-line reason on failure."
        ),
    )
    parser.add_argument(
        "--expenses",
        type=int,
        metavar="N",
        help="make sure at least N expenses exist in total, adding only the difference "
        "(random rows over the demo users and the last two years; Alok gets a third)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=10_000,
        metavar="ROWS",
        help="rows per COPY batch and commit with --expenses (default 10000)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="random seed, for reproducible data (default 42)"
    )
    args = parser.parse_args(argv)
    if args.expenses is not None and args.expenses < 0:
        parser.error("--expenses must be zero or more")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def run(args: argparse.Namespace) -> None:
    with connected(database_url()) as conn:
        check_schema(conn)
        with conn.cursor() as cur:
            cur.execute("select pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
            if not cur.fetchone()[0]:
                say("another seed_demo run holds the lock; waiting for it")
                cur.execute("select pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.commit()
        seed_reference(conn)
        user_ids, categories, methods = lookup_ids(conn)
        seed_realistic(conn, user_ids, categories, methods, args.seed)
        if args.expenses is not None:
            seed_bulk(
                conn, args.expenses, user_ids, categories, methods, args.batch_size, args.seed
            )
        summary(conn)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except SeedError as error:
        say(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; committed batches are kept, run again to finish")
        return 130
    except psycopg2.Error as error:
        text = (error.pgerror or str(error) or type(error).__name__).strip().splitlines()[0]
        say(f"error: database error: {text}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
