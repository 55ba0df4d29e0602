"""What the admin scripts print of values that came from users (names, emails, descriptions,
request ids, audit rows): every control character escaped, so no stored value can move the
admin's cursor, forge a line or send escape sequences to their terminal (the characters are
models.CONTROL_RE, the ones the API refuses in usernames and emails)."""

from __future__ import annotations

import json
import re

from models import CONTROL_RE

NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
SHOWN_RE = re.compile(f"{CONTROL_RE.pattern[:-1]}\\\\]")  # the controls and the backslash


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in NAMED:
        return NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def shown(value: object) -> str:
    """One value as one line of plain text: `\\x1b` for ESC, `\\n` for a newline, `\\u202e`
    for a bidi override, `\\\\` for a backslash (so an escape cannot be faked); None is `-`."""
    if value is None:
        return "-"
    return SHOWN_RE.sub(_escape, str(value))


def json_line(value: object) -> str:
    """One JSON object per line, non-ASCII text kept readable, but every control character
    (which JSON would let through raw: C1, bidi, U+2028/9) written as a \\uXXXX escape."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return CONTROL_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
