"""Request and response models: the HTTP contract (docs/CONTRACT.md) as Pydantic models."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

CANONICAL_INT_RE = re.compile(r"0|-?[1-9][0-9]{0,17}")


def _canonical_int(value: object) -> object:
    """Integers in paths and query strings are spelled one way only: `1` (or `-1`, which the
    range then refuses with its own message), never `01`, `1.0`, `+1`, ` 1` or `1_0` (which
    Python's int() and pydantic take), so every route decides alike and no id has aliases.
    JSON numbers stay numbers; `true` is no integer."""
    if isinstance(value, str) and not CANONICAL_INT_RE.fullmatch(value):
        raise PydanticCustomError(
            "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
        )
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def canonical_int(ge: int, le: int) -> Any:
    """The one integer type of every path, query and body field: `ge`..`le`, canonical
    spelling. (The bounds sit inside so that OpenAPI shows them as minimum/maximum.)"""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_canonical_int)]


Id = canonical_int(1, 2**53 - 1)
# In a JSON body an id is a JSON integer: not "1" (a string), 2.0 or 1e0 (numbers with a
# fraction or exponent), nor true - strict, with pydantic's "Input should be a valid integer".
BodyId = Annotated[int, Field(ge=1, le=2**53 - 1, strict=True)]


def _iso_date(value: object) -> object:
    """Only YYYY-MM-DD (pydantic alone would also take unix timestamps); 2025-02-30 fails."""
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date in YYYY-MM-DD format")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a valid calendar date") from None


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]

# The years a dashboard shows (GET /api/dashboard/{id}/monthly?year=): an expense is dated
# within them, or no dashboard could ever show it (and 9999-12-31 would top every list).
MIN_YEAR, MAX_YEAR = 1900, 2200


def _dashboard_year(value: dt.date) -> dt.date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be between {MIN_YEAR}-01-01 and {MAX_YEAR}-12-31")
    return value


ExpenseDate = Annotated[dt.date, BeforeValidator(_iso_date), AfterValidator(_dashboard_year)]


QUERY_AMOUNT_RE = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?")


def _query_amount(value: object) -> object:
    """An amount in a query string (min_amount, max_amount): digits with at most 2
    decimals, 0 to 9999999999.99, one spelling (no sign, exponent, spaces or `1_0`)."""
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not QUERY_AMOUNT_RE.fullmatch(value):
        raise ValueError("must be an amount such as 250 or 250.50 (at most 2 decimals)")
    return Decimal(value)


QueryAmount = Annotated[
    Decimal,
    BeforeValidator(_query_amount),
    WithJsonSchema(
        {"type": "string", "pattern": f"^{QUERY_AMOUNT_RE.pattern}$", "examples": ["250.50"]}
    ),
]


SURROGATE_RE = re.compile("[\ud800-\udfff]")

# Characters that move a terminal's cursor, run its escape sequences or reorder what it shows:
# C0 (tab, newline, ESC...), DEL, C1 (NEL, CSI...), the bidirectional controls (LRM, RLM,
# ALM, the embeddings, overrides and isolates) and the Unicode line and paragraph
# separators. The one definition: the API refuses them in emails (check_email; usernames
# are ASCII letters, digits and underscore, check_username) and the admin scripts print them escaped (scripts/terminal.py).
CONTROL_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _storable(value: str) -> str:
    """Text that Postgres, bcrypt and orjson can all take: no U+0000 (Postgres text cannot
    hold it, bcrypt refuses it) and no lone surrogate such as a JSON "\\ud800" (not UTF-8:
    bcrypt and orjson fail on it). Bad input, 400, before any bcrypt or database work."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if SURROGATE_RE.search(value):
        raise ValueError("must be valid Unicode text (no lone surrogates)")
    return value


Storable = AfterValidator(_storable)
SearchText = Annotated[str, StringConstraints(min_length=1, max_length=200), Storable]
StrictInput = ConfigDict(extra="ignore", str_strip_whitespace=False)


# --- reference data -------------------------------------------------------------------
class Category(BaseModel):
    id: int
    name: str
    description: str | None


class PaymentMethod(BaseModel):
    id: int
    name: str


# --- auth -----------------------------------------------------------------------------
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{3,30}$")
SPECIAL_RE = re.compile(r"[^A-Za-z0-9]")


def check_username(v: str) -> str:
    """The register rules, shared with scripts/users.py (ValueError names the rule)."""
    # ASCII letters, digits and underscore only: no control character gets through either
    if not USERNAME_RE.fullmatch(v):  # `$` alone would accept a trailing newline
        raise ValueError("Username must be 3-30 characters: letters, digits or underscore")
    return v


def check_password(v: str) -> str:
    if not 8 <= len(v) <= 128:
        raise ValueError("Password must be 8-128 characters long")
    if not (
        re.search(r"[a-z]", v)
        and re.search(r"[A-Z]", v)
        and re.search(r"[0-9]", v)
        and SPECIAL_RE.search(v)
    ):
        raise ValueError(
            "Password must contain an uppercase letter, a lowercase letter, "
            "a digit and a special character"
        )
    return v


def check_email(v: str | None) -> str | None:
    if v is None or v == "":
        return None
    if CONTROL_RE.search(v):
        raise ValueError("Email must not contain control characters")
    if len(v) > 254 or not re.fullmatch(r"[^@\s,()]+@[^@\s,()]+\.[^@\s,()]+", v):
        raise ValueError("Invalid email address")
    return v


class PublicUser(BaseModel):
    id: int
    name: str
    email: str | None


class LoginRequest(BaseModel):
    model_config = StrictInput
    email: Annotated[str, StringConstraints(min_length=1, max_length=254), Storable] = Field(
        description="Email address or username", examples=["alok@example.com"]
    )
    password: Annotated[str, StringConstraints(min_length=1, max_length=128), Storable] = Field(
        examples=["password123"]
    )


class LoginRequestTotp(LoginRequest):
    """POST /api/auth/login and /api/auth/token: `totp` once the account has TOTP enabled."""

    totp: Annotated[str, StringConstraints(max_length=16), Storable] | None = Field(
        None, description="6-digit TOTP code, required once TOTP is enabled", examples=["123456"]
    )


class LoginResponse(BaseModel):
    message: Literal["Login successful"]
    token: str
    user: PublicUser


class RegisterRequest(BaseModel):
    model_config = StrictInput
    username: str = Field(examples=["new_user"])
    password: Annotated[str, Storable] = Field(examples=["Str0ng!pass"])
    email: Annotated[str, Storable] | None = Field(None, examples=["new_user@example.com"])
    invite_code: Annotated[str, StringConstraints(max_length=128), Storable] | None = Field(
        None,
        description="Required when the server runs with REGISTRATION_MODE=invite: a "
        "single-use code from `scripts/users.py invite`",
    )

    # the rules live in functions so scripts/users.py applies exactly the same ones
    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        return check_username(v)

    @field_validator("password")
    @classmethod
    def _password(cls, v: str) -> str:
        return check_password(v)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return check_email(v)


class RegisterResponse(BaseModel):
    message: Literal["Registration successful"]
    user: PublicUser


class MessageResponse(BaseModel):
    message: str


# --- accounts (issue 22) ----------------------------------------------------------------
Role = Literal["admin", "member", "viewer"]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str
    user: PublicUser


class RefreshRequest(BaseModel):
    model_config = StrictInput
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256), Storable]


class SessionInfo(BaseModel):
    id: str
    created_at: str
    last_used_at: str
    user_agent: str | None
    ip: str | None
    current: bool


class CurrentSessionRef(BaseModel):
    id: str
    expires_at: str


class CurrentSession(BaseModel):
    user: PublicUser
    role: Role
    session: CurrentSessionRef


class SessionRevoked(BaseModel):
    id: str


class SessionsEnded(BaseModel):
    ended: int


# A new password of PUT /api/auth/password and POST /api/auth/reset-password: register's rules
NewPassword = Annotated[
    str, Storable, AfterValidator(check_password), Field(examples=["N3w!passw0rd"])
]


class PasswordChange(BaseModel):
    model_config = StrictInput
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=128), Storable]
    new_password: NewPassword


class PasswordReset(BaseModel):
    model_config = StrictInput
    code: Annotated[str, StringConstraints(min_length=1, max_length=128), Storable]
    new_password: NewPassword


class TotpSetup(BaseModel):
    secret: str
    otpauth_uri: str


class TotpCode(BaseModel):
    model_config = StrictInput
    code: Annotated[str, StringConstraints(min_length=1, max_length=16), Storable] = Field(
        examples=["123456"]
    )


class TotpStatus(BaseModel):
    enabled: bool


class AdminUser(BaseModel):
    id: int
    name: str
    email: str | None
    role: Role
    created_at: str
    expense_count: int


class AdminUserCreate(BaseModel):
    model_config = StrictInput
    username: str = Field(examples=["kabir"])
    email: Annotated[str, Storable] | None = Field(None, examples=["kabir@example.com"])
    role: Role = "member"
    password: Annotated[str, Storable] | None = Field(
        None, description="Without one, the answer carries a one-time `reset_code`"
    )

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        return check_username(v)

    @field_validator("password")
    @classmethod
    def _password(cls, v: str | None) -> str | None:
        return None if v is None else check_password(v)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return check_email(v)


class AdminUserCreated(AdminUser):
    reset_code: str | None = None
    reset_expires_at: str | None = None


class AdminUserChanges(BaseModel):
    model_config = StrictInput
    role: Role | None = None
    email: Annotated[str, Storable] | None = None
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_username(v)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return check_email(v)


class ResetCode(BaseModel):
    reset_code: str
    expires_at: str


class AdminUserDeleted(BaseModel):
    user: AdminUser
    expenses_deleted: int


class InviteCreate(BaseModel):
    model_config = StrictInput
    hours: Annotated[int, Field(ge=1, le=24 * 90)] | None = None
    note: Annotated[str, StringConstraints(max_length=200), Storable] | None = None


class InviteCreated(BaseModel):
    id: int
    code: str
    expires_at: str
    note: str | None


# --- expenses -------------------------------------------------------------------------
class Expense(BaseModel):
    id: int
    user_id: int
    user_name: str
    amount: float
    category_id: int
    category: str
    payment_method_id: int | None
    payment_method: str | None
    description: str | None
    date: dt.date
    created_at: str


def _json_number(v: object) -> object:
    # JSON numbers only (strings such as "1e400" or "NaN" are not amounts); bool is an int.
    # A number with a fraction arrives as the exact Decimal that was sent (edge.JsonRoute).
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
        raise ValueError("amount must be a number")
    return v


def _two_decimals(v: Decimal) -> Decimal:
    exponent = v.as_tuple().exponent  # a letter for NaN and infinities
    if not v.is_finite() or (
        isinstance(exponent, int) and exponent < -2 and v != v.quantize(Decimal("0.01"))
    ):
        raise ValueError("amount may have at most 2 decimals")
    return v.quantize(Decimal("0.01"))


# The fields of an expense as clients send them: POST and PUT validate with the same types,
# so they give the same 400 messages.
# A JSON number only (a string is 400), so documented as number, not pydantic's
# number-or-string for Decimal.
Amount = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(gt=0, le=Decimal("9999999999.99")),
    AfterValidator(_two_decimals),
    WithJsonSchema(
        {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 9999999999.99,
            "multipleOf": 0.01,
            "examples": [250.5],
        }
    ),
]
Description = Annotated[str, StringConstraints(max_length=500), Storable]
# A budget (issue 23): like Amount, but 0 is allowed (it removes the budget).
BudgetAmount = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=0, le=Decimal("9999999999.99")),
    AfterValidator(_two_decimals),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": 9999999999.99,
            "multipleOf": 0.01,
            "examples": [20000],
        }
    ),
]


class ExpenseCreate(BaseModel):
    model_config = StrictInput
    amount: Amount
    category_id: BodyId = Field(examples=[1])
    payment_method_id: BodyId | None = Field(None, examples=[4])
    description: Description | None = Field(None, examples=["Groceries"])
    date: ExpenseDate | None = Field(None, examples=["2025-01-15"])
    user_id: BodyId | None = Field(None, description="Defaults to the caller")


class ExpenseChanges(BaseModel):
    """PUT /api/expenses/{id}: any non-empty subset of POST's fields; only those change.
    A field left out is not validated; one sent is validated exactly as POST does (so
    `null` is refused where the column cannot be empty: amount, category_id, date, user_id).
    """

    model_config = StrictInput
    amount: Amount = None  # type: ignore[assignment]
    category_id: BodyId = Field(None, examples=[1])  # type: ignore[assignment]
    payment_method_id: BodyId | None = Field(None, examples=[4])
    description: Description | None = Field(None, examples=["Groceries and fruit"])
    date: ExpenseDate = Field(None, examples=["2025-01-16"])  # type: ignore[assignment]
    user_id: BodyId = Field(None, description="Moves the expense to this member")  # type: ignore[assignment]

    def changes(self) -> dict[str, object]:
        """Only the fields the client sent, as JSON values for update_expense()."""
        return self.model_dump(mode="json", exclude_unset=True)


class ExpenseCreated(BaseModel):
    message: Literal["Expense added successfully"]
    id: int
    expense: Expense


class ExpenseUpdated(BaseModel):
    message: Literal["Expense updated successfully"]
    expense: Expense


class ExpenseDeleted(BaseModel):
    message: Literal["Expense deleted successfully"]
    id: int


# --- dashboards -----------------------------------------------------------------------
class DashboardUser(BaseModel):
    id: int
    name: str


class CategoryAmount(BaseModel):
    category: str
    amount: float
    percentage: float


class MonthlyPeriod(BaseModel):
    type: Literal["monthly"]
    year: int
    month: int


class YearlyPeriod(BaseModel):
    type: Literal["yearly"]
    year: int


class MonthlyTrend(BaseModel):
    month: int
    month_name: str
    amount: float


class MonthlyDashboard(BaseModel):
    user: DashboardUser
    period: MonthlyPeriod
    total_spent: float
    top_categories: list[CategoryAmount]
    category_breakdown: list[CategoryAmount]


class YearlyDashboard(BaseModel):
    user: DashboardUser
    period: YearlyPeriod
    total_spent: float
    top_categories: list[CategoryAmount]
    category_breakdown: list[CategoryAmount]
    monthly_trends: list[MonthlyTrend]


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, str] = {}


class Versions(BaseModel):
    """GET /health/versions: what scripts/smoke.py prints after a deploy."""

    postgres: str = Field(description="PostgreSQL's server_version", examples=["17.6"])
    postgrest: str = Field(
        description="PostgREST's version (its Server header or OpenAPI root), or `unknown`",
        examples=["14.1"],
    )
