"""The fixed dataset behind the contract goldens (tests/contract/golden, tests/contract/legacy).

Every id, date, amount and timestamp is explicit, so every response of the contract is the
same on every run. Chosen to exercise the rules of docs/CONTRACT.md:
  - 7 categories, all spent on by Alok in January 2025 -> top_categories is cut at 5;
  - ties: Transportation = Entertainment (750) in 2025-01, Food = Utilities (500) for Amol;
  - integer and decimal amounts (120.50 -> 120.5, 0.01, 1234.56 + 65.44 = 1300 -> integer);
  - percentages: 1/16 = 6.25 -> 6.3 (half away from zero), 50 and 100 stay integers,
    0.01 of 6750.50 -> 0;
  - several years (2023-12 .. 2025-03), a leap day, both ends of a year, same-date rows;
  - Rashmi spends nothing in 2025, Guest_user (email null) never spends.

Load it into any database (it EMPTIES every table first):
    python -m tests.contract.dataset --database-url postgresql://... --yes
"""

from __future__ import annotations

import argparse
import os
import sys

from tests.helpers import (
    DEMO_PASSWORD,
    PAYMENT_METHODS,
    empty_and_load_reference,
    password_hash,
    sql,
    sync_sequences,
)

USERS = [  # (id, name, email)
    (1, "Alok", "alok@example.com"),
    (2, "Amol", "amol@example.com"),
    (3, "Atul", "atul@example.com"),
    (4, "Rashmi", "rashmi@example.com"),
    (5, "Guest_user", None),
]
CATEGORIES = [
    (1, "Food", "Groceries, restaurants and snacks"),
    (2, "Transportation", "Fuel, public transport and taxis"),
    (3, "Utilities", "Electricity, water, internet and phone bills"),
    (4, "Entertainment", "Movies, events, subscriptions and hobbies"),
    (5, "Healthcare", "Doctor visits and medicines"),
    (6, "Education", "School fees, books and courses"),
    (7, "Shopping", "Clothes and household items"),
]
CASH, CARD, DEBIT, UPI, OTHER = 1, 2, 3, 4, 5
FOOD, TRANSPORT, UTILITIES, FUN, HEALTH, EDUCATION, SHOPPING = range(1, 8)

# (id, user_id, category_id, payment_method_id, amount, description, date)
EXPENSES = [
    # Alok, January 2025: all 7 categories, total 6750.50
    (1, 1, UTILITIES, CARD, "2000.00", "Electricity bill", "2025-01-05"),
    (2, 1, UTILITIES, UPI, "1000.00", "Internet", "2025-01-20"),
    (3, 1, FOOD, CASH, "1200.25", "Groceries", "2025-01-10"),
    (4, 1, FOOD, UPI, "300.25", "Dinner out", "2025-01-10"),
    (5, 1, TRANSPORT, DEBIT, "750.00", "Fuel", "2025-01-12"),
    (6, 1, FUN, CARD, "750.00", "Concert", "2025-01-18"),
    (7, 1, HEALTH, CASH, "499.99", "Medicines", "2025-01-25"),
    (8, 1, EDUCATION, OTHER, "250.00", "Books", "2025-01-28"),
    (9, 1, SHOPPING, UPI, "0.01", "Test purchase", "2025-01-31"),
    # Alok, other periods
    (10, 1, FOOD, CASH, "1.00", "Leap-day snack", "2024-02-29"),
    (11, 1, UTILITIES, CARD, "15.00", "Water", "2024-02-10"),
    (12, 1, TRANSPORT, None, "120.50", None, "2024-12-31"),
    (13, 1, FOOD, CASH, "80.00", "Bakery", "2023-12-15"),
    (14, 1, SHOPPING, CARD, "2999.99", "Sofa", "2025-03-03"),
    # Amol
    (15, 2, FOOD, CASH, "400.00", "Groceries", "2025-01-01"),
    (16, 2, FOOD, UPI, "100.00", "Lunch", "2025-01-15"),
    (17, 2, UTILITIES, DEBIT, "500.00", "Gas", "2025-01-31"),
    (18, 2, FUN, CARD, "1234.56", "Holiday tickets", "2024-06-15"),
    (19, 2, TRANSPORT, UPI, "65.44", "Taxi", "2024-11-30"),
    # Atul
    (20, 3, EDUCATION, CARD, "333.33", "Course part 1", "2025-01-10"),
    (21, 3, EDUCATION, CARD, "333.33", "Course part 2", "2025-01-11"),
    (22, 3, HEALTH, None, "333.34", "Dentist", "2025-01-12"),
    (23, 3, FOOD, CASH, "10.10", "Tea", "2024-07-04"),
    # Rashmi: only the last day of 2024
    (24, 4, UTILITIES, OTHER, "99.99", "Phone", "2024-12-31"),
]


def created_at(expense_id: int) -> str:
    return f"2025-04-01 09:{expense_id:02d}:00+00"


def load(dsn: str) -> None:
    """Empty every table and insert exactly the dataset above (password `password123`)."""
    with sql(dsn) as cur:
        empty_and_load_reference(cur, CATEGORIES, PAYMENT_METHODS)
        cur.executemany(
            "insert into public.users (id, name, email, password_hash, created_at) "
            "values (%s,%s,%s,%s,'2024-01-01 00:00:00+00')",
            [(uid, name, email, password_hash(DEMO_PASSWORD)) for uid, name, email in USERS],
        )
        cur.executemany(
            "insert into public.expenses (id, user_id, category_id, payment_method_id, amount, "
            "description, date, created_at) values (%s,%s,%s,%s,%s,%s,%s,%s)",
            [(*row, created_at(row[0])) for row in EXPENSES],
        )
        sync_sequences(cur)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Replace ALL data of a database with the fixed contract-test dataset."
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="Postgres URL (default: $DATABASE_URL)",
    )
    parser.add_argument(
        "--yes", action="store_true", help="confirm that every table may be emptied"
    )
    args = parser.parse_args()
    if not args.database_url:
        print("error: no --database-url and no DATABASE_URL", file=sys.stderr)
        return 2
    if not args.yes:
        print("error: this empties every table; add --yes to confirm", file=sys.stderr)
        return 2
    load(args.database_url)
    print(f"loaded {len(USERS)} users, {len(CATEGORIES)} categories, {len(EXPENSES)} expenses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
