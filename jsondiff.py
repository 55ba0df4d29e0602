"""Type-strict comparison of two JSON documents.

One differ for both sides of the migration: `scripts/contract_diff.py` reports every
difference between the legacy's answers and ours, and shadow compare (shadow.py) logs the
paths where a live legacy answer differs. Type-strict because the legacy (JavaScript)
renders 400, never 400.0: `400` and `400.0` differ, and so do `true` and `1`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from models import CONTROL_RE


@dataclass
class Difference:
    kind: str  # status | missing_key | extra_key | key_order | type | value | length | order
    path: str  # JSON path: $.user.name, $.category_breakdown[0].amount
    old: Any = None
    new: Any = None

    def describe(self, old_label: str = "old", new_label: str = "new") -> str:
        o, n = short(self.old), short(self.new)
        return {
            "status": f"status: {old_label} {o}, {new_label} {n}",
            "missing_key": f"{self.path}: missing in {new_label} ({old_label} has {o})",
            "extra_key": f"{self.path}: extra in {new_label} ({n}), absent in {old_label}",
            "key_order": f"{self.path}: key order {old_label} {o}, {new_label} {n}",
            "type": f"{self.path}: type {json_type(self.old)} -> {json_type(self.new)} "
            f"({old_label} {o}, {new_label} {n})",
            "value": f"{self.path}: {old_label} {o}, {new_label} {n}",
            "length": f"{self.path}: {old_label} has {o} items, {new_label} {n}",
            "order": f"{self.path}: same items, different order: {old_label} {o}, {new_label} {n}",
        }[self.kind]


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "bool",
        int: "int",
        float: "float",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def short(value: Any, limit: int = 120) -> str:
    """A value as JSON for a report line: every control character as a \\uXXXX escape (JSON
    leaves C1, bidi and line separators raw), so a stored text cannot reach a terminal."""
    text = CONTROL_RE.sub(
        lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False)
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def canonical(value: Any) -> str:
    """Equal strings <=> equal JSON values including types (400 != 400.0), keys unordered."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def item_label(item: Any) -> Any:
    if isinstance(item, dict):
        for key in ("category", "name", "month", "id"):
            if key in item:
                return item[key]
    return item


def diff_json(old: Any, new: Any, path: str = "$", key_order: bool = False) -> list[Difference]:
    """Every difference of `new` from `old`, in document order; `key_order` also reports
    objects whose common keys come in another order."""
    if json_type(old) != json_type(new):
        return [Difference("type", path, old, new)]
    if isinstance(old, dict):
        out: list[Difference] = []
        for k in old:
            if k in new:
                out += diff_json(old[k], new[k], f"{path}.{k}", key_order)
            else:
                out.append(Difference("missing_key", f"{path}.{k}", old[k]))
        out += [Difference("extra_key", f"{path}.{k}", None, new[k]) for k in new if k not in old]
        common_old = [k for k in old if k in new]
        common_new = [k for k in new if k in old]
        if key_order and common_old != common_new:
            out.append(Difference("key_order", path, common_old, common_new))
        return out
    if isinstance(old, list):
        if canonical(old) == canonical(new):
            return []
        if len(old) == len(new) and sorted(map(canonical, old)) == sorted(map(canonical, new)):
            return [
                Difference(
                    "order", path, [item_label(i) for i in old], [item_label(i) for i in new]
                )
            ]
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out += diff_json(a, b, f"{path}[{i}]", key_order)
        if len(old) != len(new):
            out.append(Difference("length", path, len(old), len(new)))
        return out
    return [] if old == new else [Difference("value", path, old, new)]
