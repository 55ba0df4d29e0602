"""What /docs and /redoc show beyond what FastAPI derives from the routes.

- Swagger UI and ReDoc are served from the files of the pinned `fastapi-offline` package
  (under /docs-static), so the pages work on a machine without internet access.
- Security schemes: `bearerAuth` (the JWT of POST /api/auth/login), `cookieAuth` (the
  `jwt` cookie it sets) and `oauth2Password` (username and password, which Swagger UI
  sends to POST /api/auth/token) on every operation that needs a login, `operatorToken`
  (METRICS_TOKEN) on /health/shadow; the Authorize button then makes "Try it out" work.
- Examples per operation and status, written as media-type examples: pydantic sorts the
  keys of model-level examples alphabetically, these keep the contract's order. Success
  bodies are real golden responses (tests/contract/golden), errors are the messages the
  operation really answers; tests/integration/test_docs.py checks both against real
  responses, so an example cannot drift from the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

from auth import TOKEN_INVALID, TOKEN_MISSING
from database import DB_UNAVAILABLE
from deps import current_user
from errors import ErrorBody
from metrics import OPERATOR_TOKEN_REQUIRED, OPERATOR_TOKEN_UNSET
from ratelimit import TOO_MANY
from routers.accounts import (
    REFRESH_INVALID,
    RESET_INVALID,
    SESSION_NOT_FOUND,
    TOTP_NOT_ENABLED,
    TOTP_NOT_SET_UP,
    WRONG_PASSWORD,
)
from routers.admin import NOTHING_TO_CHANGE
from routers.auth import BAD_LOGIN, TOTP_INVALID, TOTP_REQUIRED
from routers.expenses import NOTHING_TO_UPDATE
from routers.metrics import operator_access

# The pages may load only what this server serves: ReDoc's sidebar credit would otherwise
# fetch its logo from a CDN (an offline machine shows a broken image, a tracked one a hit).
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; "
    "font-src 'self' data:; frame-ancestors 'none'"
)
STATIC_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
STATIC_URL = "/docs-static"

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The `token` of POST /api/auth/login",
    },
    "cookieAuth": {
        "type": "apiKey",
        "in": "cookie",
        "name": "jwt",
        "description": "The httpOnly cookie POST /api/auth/login sets (browsers "
        "send it by themselves)",
    },
    "oauth2Password": {
        "type": "oauth2",
        "description": "Username (or email) and password, sent to POST /api/auth/token "
        "(add `totp` there once TOTP is enabled)",
        "flows": {"password": {"tokenUrl": "/api/auth/token", "scopes": {}}},
    },
    "operatorToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "METRICS_TOKEN of the server's configuration",
    },
}
ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}
MEMBER_SECURITY: list[dict[str, list[str]]] = [
    {"bearerAuth": []},
    {"cookieAuth": []},
    {"oauth2Password": []},
]
OPERATOR_SECURITY: list[dict[str, list[str]]] = [{"operatorToken": []}]

TOO_LARGE = "Request body too large"
INTERNAL = "Internal server error"
COMMON = {413: [TOO_LARGE], 500: [INTERNAL], 503: [DB_UNAVAILABLE]}
NO_LOGIN = {401: [TOKEN_MISSING, TOKEN_INVALID]}

NOT_YOURS = "You can only change your own expenses"
# Postgres' messages (sql/R21_access_roles.sql, sql/R32_accounts.sql)
VIEWER_REFUSED = "Viewers can read but not change anything"
ADMINS_ONLY = "Admins only"
LAST_ADMIN = "The last admin cannot be demoted or deleted"
USER_NOT_FOUND = "User not found"
TOTP_ALREADY = "TOTP is already enabled"
BAD_USER_ID = "user_id: Input should be a valid integer, unable to parse string as an integer"
CHANGED = "Expense was changed by someone else"

# Error messages per operation and status: the first is the one a reader sees first.
ERRORS: dict[tuple[str, str], dict[int, list[str]]] = {
    ("POST", "/api/auth/login"): {
        400: ["password is required", "Malformed JSON body"],
        401: ["Invalid email or password"],
        429: [TOO_MANY],
    },
    ("POST", "/api/auth/register"): {
        400: [
            "Username already exists",
            "Email already exists",
            "password: Password must contain an uppercase letter, a lowercase letter, "
            "a digit and a special character",
            "username: Username must be 3-30 characters: letters, digits or underscore",
            "An invite code is required",
            "Invalid or expired invite code",
        ],
        403: ["Registration is closed"],
        429: [TOO_MANY],
    },
    ("GET", "/api/auth/me"): NO_LOGIN,
    ("GET", "/health/versions"): NO_LOGIN,
    ("POST", "/api/auth/logout"): NO_LOGIN,
    ("GET", "/api/categories"): {},
    ("GET", "/api/payment-methods"): {},
    ("GET", "/api/expenses"): {
        400: [
            "date_from must not be after date_to",
            "date_to: must be a date in YYYY-MM-DD format",
            "limit: Input should be greater than or equal to 1",
            "min_amount: must be an amount such as 250 or 250.50 (at most 2 decimals)",
            "min_amount must not be more than max_amount",
        ],
        **NO_LOGIN,
    },
    ("POST", "/api/expenses"): {
        400: [
            "amount: amount must be a number",
            "amount: Input should be greater than 0",
            "category_id is required",
            "Invalid category_id: category does not exist",
            "date: is not a valid calendar date",
            "Malformed JSON body",
        ],
        **NO_LOGIN,
        403: [VIEWER_REFUSED],
        409: ["Idempotency-Key was already used with a different request"],
    },
    ("GET", "/api/expenses/{expense_id}"): {
        400: ["expense_id: Input should be a valid integer, unable to parse string as an integer"],
        **NO_LOGIN,
        404: ["Expense not found"],
    },
    ("PUT", "/api/expenses/{expense_id}"): {
        400: [
            "amount: Input should be greater than 0",
            "Invalid category_id: category does not exist",
            "date: is not a valid calendar date",
            "amount: amount must be a number",
            NOTHING_TO_UPDATE,
        ],
        **NO_LOGIN,
        403: [NOT_YOURS, VIEWER_REFUSED],
        404: ["Expense not found"],
        412: [CHANGED],
    },
    ("DELETE", "/api/expenses/{expense_id}"): {
        400: ["expense_id: Input should be a valid integer, unable to parse string as an integer"],
        **NO_LOGIN,
        403: [NOT_YOURS, VIEWER_REFUSED],
        404: ["Expense not found"],
        412: [CHANGED],
    },
    ("GET", "/api/expenses/export.csv"): {
        400: ["date_from must not be after date_to", "date_from: is not a valid calendar date"],
        **NO_LOGIN,
    },
    ("GET", "/api/dashboard/users"): NO_LOGIN,
    ("POST", "/api/expenses/import"): NO_LOGIN,
    ("POST", "/api/recurring"): {
        400: ["Invalid category_id: category does not exist"],
        **NO_LOGIN,
    },
    ("GET", "/api/recurring"): NO_LOGIN,
    ("PUT", "/api/recurring/{rule_id}"): {
        400: ["Nothing to update: send at least one field of POST /api/recurring"],
        **NO_LOGIN,
        403: ["You can only change your own recurring expenses"],
        404: ["Recurring expense not found"],
    },
    ("DELETE", "/api/recurring/{rule_id}"): {
        400: ["rule_id: Input should be a valid integer, unable to parse string as an integer"],
        **NO_LOGIN,
        403: ["You can only change your own recurring expenses"],
        404: ["Recurring expense not found"],
    },
    ("GET", "/api/expenses/export.xlsx"): {
        400: ["date_from must not be after date_to", "date_from: is not a valid calendar date"],
        **NO_LOGIN,
    },
    ("PUT", "/api/budgets"): {
        400: [
            "Invalid category_id: category does not exist",
            "month: must be a month in YYYY-MM format (1900-01 to 2200-12)",
        ],
        **NO_LOGIN,
    },
    ("GET", "/api/budgets"): {
        400: ["month: Input should be less than or equal to 12"],
        **NO_LOGIN,
    },
    ("GET", "/api/dashboard/{user_id}/monthly"): {
        400: [
            "month: Input should be less than or equal to 12",
            "year: Input should be greater than or equal to 1900",
        ],
        **NO_LOGIN,
        404: ["User not found"],
    },
    ("GET", "/api/dashboard/{user_id}/yearly"): {
        400: ["year: Input should be less than or equal to 2200"],
        **NO_LOGIN,
        404: ["User not found"],
    },
    ("GET", "/health/shadow"): {401: [OPERATOR_TOKEN_REQUIRED], 403: [OPERATOR_TOKEN_UNSET]},
    # --- accounts (issue 22) ----------------------------------------------------------
    ("POST", "/api/auth/token"): {
        400: ["password is required", "Malformed JSON body"],
        401: [BAD_LOGIN, TOTP_REQUIRED, TOTP_INVALID],
        429: [TOO_MANY],
    },
    ("POST", "/api/auth/refresh"): {
        400: ["refresh_token is required"],
        401: [REFRESH_INVALID],
    },
    ("GET", "/api/auth/session"): NO_LOGIN,
    ("GET", "/api/auth/sessions"): NO_LOGIN,
    ("DELETE", "/api/auth/sessions/{session_id}"): {
        400: ["session_id: String should have at most 64 characters"],
        **NO_LOGIN,
        404: [SESSION_NOT_FOUND],
    },
    ("DELETE", "/api/auth/sessions"): NO_LOGIN,
    ("PUT", "/api/auth/password"): {
        400: [
            WRONG_PASSWORD,
            "new_password: Password must contain an uppercase letter, a lowercase letter, "
            "a digit and a special character",
        ],
        **NO_LOGIN,
        429: [TOO_MANY],
    },
    ("POST", "/api/auth/reset-password"): {400: [RESET_INVALID], 429: [TOO_MANY]},
    ("POST", "/api/auth/totp/setup"): {**NO_LOGIN, 409: [TOTP_ALREADY]},
    ("POST", "/api/auth/totp/enable"): {
        400: [TOTP_INVALID, TOTP_NOT_SET_UP],
        **NO_LOGIN,
        409: [TOTP_ALREADY],
        429: [TOO_MANY],
    },
    ("DELETE", "/api/auth/totp"): {
        400: [TOTP_INVALID, TOTP_NOT_ENABLED],
        **NO_LOGIN,
        429: [TOO_MANY],
    },
    ("GET", "/api/admin/users"): {**NO_LOGIN, 403: [ADMINS_ONLY]},
    ("POST", "/api/admin/users"): {
        400: ["Username already exists"],
        **NO_LOGIN,
        403: [ADMINS_ONLY],
    },
    ("PATCH", "/api/admin/users/{user_id}"): {
        400: [NOTHING_TO_CHANGE],
        **NO_LOGIN,
        403: [ADMINS_ONLY],
        404: [USER_NOT_FOUND],
        409: [LAST_ADMIN],
    },
    ("POST", "/api/admin/users/{user_id}/reset"): {
        400: [BAD_USER_ID],
        **NO_LOGIN,
        403: [ADMINS_ONLY],
        404: [USER_NOT_FOUND],
    },
    ("DELETE", "/api/admin/users/{user_id}"): {
        400: [BAD_USER_ID],
        **NO_LOGIN,
        403: [ADMINS_ONLY],
        404: [USER_NOT_FOUND],
        409: [LAST_ADMIN],
    },
    ("POST", "/api/admin/invites"): {
        400: ["hours: Input should be greater than or equal to 1"],
        **NO_LOGIN,
        403: [ADMINS_ONLY],
    },
}

ALOK = {"id": 1, "name": "Alok", "email": "alok@example.com"}
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
CATEGORY_ROWS = [
    {"category": "Utilities", "amount": 3000, "percentage": 44.4},
    {"category": "Food", "amount": 1500.5, "percentage": 22.2},
    {"category": "Entertainment", "amount": 750, "percentage": 11.1},
    {"category": "Transportation", "amount": 750, "percentage": 11.1},
    {"category": "Healthcare", "amount": 499.99, "percentage": 7.4},
]
EXPENSE = {
    "id": 14,
    "user_id": 1,
    "user_name": "Alok",
    "amount": 2999.99,
    "category_id": 7,
    "category": "Shopping",
    "payment_method_id": 2,
    "payment_method": "Credit Card",
    "description": "Sofa",
    "date": "2025-03-03",
    "created_at": "2025-03-03T09:15:02.123456+00:00",
}
YEARLY_TRENDS = dict(enumerate((6750.5, 0, 2999.99, 0, 0, 0, 0, 0, 0, 0, 0, 0), start=1))

# Success bodies, in the contract's key order (from the goldens of tests/contract/golden).
RULE_EXAMPLE = {
    "id": 1,
    "user_id": 1,
    "amount": 15000,
    "category_id": 3,
    "payment_method_id": 4,
    "description": "Rent",
    "frequency": "monthly",
    "start_date": "2024-10-31",
    "end_date": "2025-02-28",
    "next_date": None,
}
SUCCESS: dict[tuple[str, str], tuple[int, Any]] = {
    ("POST", "/api/auth/login"): (
        200,
        {
            "message": "Login successful",
            "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOjF9.c2lnbmF0dXJl",
            "user": ALOK,
        },
    ),
    ("POST", "/api/auth/register"): (
        200,
        {
            "message": "Registration successful",
            "user": {"id": 6, "name": "new_member", "email": "new_member@example.com"},
        },
    ),
    ("GET", "/api/auth/me"): (200, ALOK),
    ("POST", "/api/auth/logout"): (200, {"message": "Logout successful"}),
    ("GET", "/api/categories"): (
        200,
        [
            {"id": 1, "name": "Food", "description": "Groceries, restaurants and snacks"},
            {"id": 2, "name": "Transportation", "description": "Fuel, public transport and taxis"},
        ],
    ),
    ("GET", "/api/payment-methods"): (
        200,
        [{"id": 1, "name": "Cash"}, {"id": 2, "name": "Credit Card"}],
    ),
    ("GET", "/api/expenses"): (
        200,
        [
            EXPENSE,
            {
                **EXPENSE,
                "id": 17,
                "user_id": 2,
                "user_name": "Amol",
                "amount": 500,
                "category_id": 3,
                "category": "Utilities",
                "payment_method_id": 3,
                "payment_method": "Debit Card",
                "description": "Gas",
                "date": "2025-01-31",
            },
        ],
    ),
    ("POST", "/api/expenses"): (
        201,
        {
            "message": "Expense added successfully",
            "id": 25,
            "expense": {
                **EXPENSE,
                "id": 25,
                "amount": 123.45,
                "category_id": 5,
                "category": "Healthcare",
                "payment_method_id": 4,
                "payment_method": "UPI",
                "description": "Pharmacy",
                "date": "2025-02-14",
            },
        },
    ),
    ("GET", "/api/expenses/{expense_id}"): (200, EXPENSE),
    ("PUT", "/api/expenses/{expense_id}"): (
        200,
        {
            "message": "Expense updated successfully",
            "expense": {**EXPENSE, "amount": 2899.99, "description": "Sofa (discounted)"},
        },
    ),
    ("DELETE", "/api/expenses/{expense_id}"): (
        200,
        {"message": "Expense deleted successfully", "id": 14},
    ),
    ("GET", "/api/dashboard/users"): (
        200,
        [ALOK, {"id": 2, "name": "Amol", "email": "amol@example.com"}],
    ),
    ("GET", "/api/dashboard/{user_id}/monthly"): (
        200,
        {
            "user": {"id": 1, "name": "Alok"},
            "period": {"type": "monthly", "year": 2025, "month": 1},
            "total_spent": 6750.5,
            "top_categories": CATEGORY_ROWS,
            "category_breakdown": [
                *CATEGORY_ROWS,
                {"category": "Education", "amount": 250, "percentage": 3.7},
                {"category": "Shopping", "amount": 0.01, "percentage": 0},
            ],
        },
    ),
    ("GET", "/api/dashboard/{user_id}/yearly"): (
        200,
        {
            "user": {"id": 1, "name": "Alok"},
            "period": {"type": "yearly", "year": 2025},
            "total_spent": 9750.49,
            "top_categories": [
                {"category": "Utilities", "amount": 3000, "percentage": 30.8},
                {"category": "Food", "amount": 1500.5, "percentage": 15.4},
            ],
            "category_breakdown": [
                {"category": "Utilities", "amount": 3000, "percentage": 30.8},
                {"category": "Food", "amount": 1500.5, "percentage": 15.4},
            ],
            "monthly_trends": [
                {"month": m, "month_name": MONTHS[m - 1], "amount": a}
                for m, a in YEARLY_TRENDS.items()
            ],
        },
    ),
    ("POST", "/api/recurring"): (
        201,
        {
            "message": "Recurring expense created",
            "id": 1,
            "next_date": None,
            "recurring": RULE_EXAMPLE,
        },
    ),
    ("GET", "/api/recurring"): (200, [RULE_EXAMPLE]),
    ("PUT", "/api/recurring/{rule_id}"): (
        200,
        {"message": "Recurring expense updated", "recurring": RULE_EXAMPLE},
    ),
    ("DELETE", "/api/recurring/{rule_id}"): (
        200,
        {"message": "Recurring expense deleted", "id": 1},
    ),
    ("POST", "/api/expenses/import"): (201, {"message": "Imported 2 expenses", "imported": 2}),
    ("PUT", "/api/budgets"): (
        200,
        {
            "message": "Budget saved",
            "category_id": 1,
            "category": "Food",
            "month": "2025-05",
            "amount": 20000,
        },
    ),
    ("GET", "/api/budgets"): (
        200,
        [
            {
                "category_id": 1,
                "category": "Food",
                "budget": 20000,
                "spent": 21500.5,
                "remaining": -1500.5,
                "percentage": 107.5,
                "over": True,
            },
            {
                "category_id": 3,
                "category": "Utilities",
                "budget": None,
                "spent": 3000,
                "remaining": None,
                "percentage": None,
                "over": False,
            },
        ],
    ),
    ("GET", "/health"): (200, {"status": "ok"}),
    ("GET", "/health/ready"): (
        200,
        {
            "status": "ready",
            "checks": {"postgres": "ok", "postgrest": "ok", "revocation": "ok", "admin": "ok"},
        },
    ),
    ("GET", "/health/versions"): (200, {"postgres": "17.6", "postgrest": "14.1"}),
    ("GET", "/health/shadow"): (
        200,
        {
            "enabled": True,
            "worker_pid": 4242,
            "concurrency": 4,
            "in_flight": 0,
            "totals": {
                "compared": 2,
                "matches": 1,
                "differences": 0,
                "errors": 1,
                "timeouts": 0,
                "skipped": 0,
            },
            "endpoints": {
                "/api/categories": {
                    "compared": 2,
                    "matches": 1,
                    "differences": 0,
                    "errors": 1,
                    "timeouts": 0,
                    "skipped": 0,
                }
            },
        },
    ),
}
# --- accounts (issue 22): from the goldens of tests/contract/golden/accounts ------------
SESSION_ID = "9f1c2e7a4b3d4c5e8f60718293a4b5c6"
A_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOjF9.c2lnbmF0dXJl"
A_CODE = "q3Vx0Zb1n9M4kT7yR2wL8pD5sH6fJcAeGuKiOoPzXyW"
WHEN = "2025-03-03T09:15:02.123456+00:00"
TOKEN_PAIR = {
    "access_token": A_TOKEN,
    "token_type": "bearer",
    "expires_in": 900,
    "refresh_token": A_CODE,
    "user": ALOK,
}
ADMIN_ROW = {
    "id": 3,
    "name": "Atul",
    "email": "atul@example.com",
    "role": "member",
    "created_at": WHEN,
    "expense_count": 4,
}
SUCCESS.update(
    {
        ("POST", "/api/auth/token"): (200, TOKEN_PAIR),
        ("POST", "/api/auth/refresh"): (200, TOKEN_PAIR),
        ("GET", "/api/auth/session"): (
            200,
            {
                "user": ALOK,
                "role": "admin",
                "session": {"id": SESSION_ID, "expires_at": "2025-03-04T09:15:02+00:00"},
            },
        ),
        ("GET", "/api/auth/sessions"): (
            200,
            [
                {
                    "id": SESSION_ID,
                    "created_at": WHEN,
                    "last_used_at": WHEN,
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                    "ip": "203.0.113.7",
                    "current": True,
                }
            ],
        ),
        ("DELETE", "/api/auth/sessions/{session_id}"): (200, {"id": SESSION_ID}),
        ("DELETE", "/api/auth/sessions"): (200, {"ended": 2}),
        ("PUT", "/api/auth/password"): (200, {"ended": 1}),
        ("POST", "/api/auth/reset-password"): (
            200,
            {"id": 3, "name": "Atul", "email": "atul@example.com"},
        ),
        ("POST", "/api/auth/totp/setup"): (
            200,
            {
                "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                "otpauth_uri": "otpauth://totp/Family%20Finance:alok%40example.com?"
                "secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Family%20Finance",
            },
        ),
        ("POST", "/api/auth/totp/enable"): (200, {"enabled": True}),
        ("DELETE", "/api/auth/totp"): (200, {"enabled": False}),
        ("GET", "/api/admin/users"): (200, [ADMIN_ROW]),
        ("POST", "/api/admin/users"): (
            201,
            {
                **ADMIN_ROW,
                "id": 6,
                "name": "kabir",
                "email": "kabir@example.com",
                "expense_count": 0,
                "reset_code": A_CODE,
                "reset_expires_at": "2025-03-04T09:15:02+00:00",
            },
        ),
        ("PATCH", "/api/admin/users/{user_id}"): (200, {**ADMIN_ROW, "role": "viewer"}),
        ("POST", "/api/admin/users/{user_id}/reset"): (
            200,
            {"reset_code": A_CODE, "expires_at": "2025-03-04T09:15:02+00:00"},
        ),
        ("DELETE", "/api/admin/users/{user_id}"): (
            200,
            {"user": ADMIN_ROW, "expenses_deleted": 4},
        ),
        ("POST", "/api/admin/invites"): (
            201,
            {
                "id": 1,
                "code": A_CODE,
                "expires_at": "2025-03-05T09:15:02+00:00",
                "note": "for Kabir",
            },
        ),
    }
)
EXTRA_RESPONSES: dict[tuple[str, str], dict[int, Any]] = {
    ("POST", "/api/expenses/import"): {
        200: {
            "message": "Dry run: 2 expenses would be imported, nothing written",
            "would_import": 2,
        },
        400: {
            "error": "Nothing imported: 4 bad lines",
            "lines": [
                {"line": 2, "error": "date must be a date in YYYY-MM-DD format: 2025-02-30"},
                {"line": 3, "error": "unknown user: Nobody"},
                {
                    "line": 4,
                    "error": "amount must be a number above 0 with at most 2 decimals: 1.234",
                },
                {"line": 5, "error": "expected 4 fields, found 3"},
            ],
        },
    },
    ("GET", "/health/ready"): {
        503: {
            "error": DB_UNAVAILABLE,
            "status": "unavailable",
            "checks": {
                "postgres": "ok",
                "postgrest": "unreachable",
                "revocation": "ok",
                "admin": "ok",
            },
        }
    },
}


def api_routes(app: FastAPI):
    """Every documented APIRoute, through included routers (FastAPI keeps those nested)."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            yield route


def _needs(route: APIRoute, dependency) -> bool:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is dependency:
            return True
        stack.extend(dependant.dependencies)
    return False


def _error_examples(messages: list[str]) -> dict[str, Any]:
    return {
        "examples": {
            f"e{i}" if i else "default": {"summary": m, "value": {"error": m}}
            for i, m in enumerate(messages)
        }
    }


def document(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Add security requirements and examples to the OpenAPI document FastAPI generated."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for route in api_routes(app):
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            key = (method, route.path_format)
            if _needs(route, current_user):
                operation["security"] = MEMBER_SECURITY
            elif _needs(route, operator_access):
                operation["security"] = OPERATOR_SECURITY
            responses = operation.get("responses", {})
            errors = {
                **{s: m for s, m in COMMON.items() if str(s) in responses},
                **ERRORS.get(key, {}),
            }
            for status, messages in errors.items():
                media = responses.get(str(status), {}).get("content", {}).get("application/json")
                if media is not None and media.get("schema") == ERROR_SCHEMA:
                    media.update(_error_examples(messages))
            if key in SUCCESS:
                status, body = SUCCESS[key]
                media = responses.get(str(status), {}).get("content", {}).get("application/json")
                if media is not None:
                    media["example"] = body
            for status, body in EXTRA_RESPONSES.get(key, {}).items():
                media = responses.get(str(status), {}).get("content", {}).get("application/json")
                if media is not None:
                    media["example"] = body
    return schema


def install(app: FastAPI) -> None:
    """/docs and /redoc from the packaged files (no CDN)."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": False, "displayRequestDuration": True},
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page


def custom_openapi(app: FastAPI):
    """FastAPI documents validation errors as 422; we answer them as 400 {"error"}."""

    def build():
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        error_ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault(
                        "400",
                        {
                            "description": "Invalid input",
                            "content": {"application/json": {"schema": error_ref}},
                        },
                    )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        app.openapi_schema = document(app, schema)
        return schema

    return build
