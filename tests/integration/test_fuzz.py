"""Schemathesis against our own /openapi.json on a running gunicorn server.

Every operation gets up to 30 schema-valid (positive) and 30 schema-breaking (negative)
examples, each authenticated with a fresh valid Bearer token (so a fuzzed logout cannot
lock the fuzzer out). Zero 5xx, and every response must match what the document says:
a documented status code, the documented content type and the documented body schema.
Generation is derandomized, so a failure reproduces on the next run.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import bearer

MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


PASSES = [  # (name, generation mode, send a valid token)
    ("positive", GenerationMode.POSITIVE, True),
    ("negative", GenerationMode.NEGATIVE, True),
    ("no-token", GenerationMode.POSITIVE, False),  # 401s must be documented too
]


@pytest.mark.slow
def test_fuzzed_requests_get_no_5xx_and_only_documented_responses(start_server, fresh_db):
    base = start_server(workers=2)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    examples: dict[str, int] = {}
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]

    for operation in operations:
        for name, mode, with_token in PASSES:
            label = f"{operation.label} [{name}]"
            examples[label] = 0

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES if with_token else 10,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case) -> None:
                examples[label] += 1  # noqa: B023 - runs within this iteration
                headers = bearer() if with_token else None  # noqa: B023 - as above
                response = case.call_and_validate(
                    base_url=base, checks=CHECKS, timeout=30, headers=headers
                )
                statuses[response.status_code] += 1

            try:
                fuzz()
            except Unsatisfiable:
                pass  # nothing schema-breaking can be sent (e.g. no parameters at all)
            except Exception as exc:  # noqa: BLE001 - every operation is fuzzed, then reported
                failures.append(f"{label}: {exc}")

    total = sum(examples.values())
    print(
        f"\nschemathesis: {total} examples over {len(operations)} operations; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    for label, count in examples.items():
        print(f"  {count:3d}  {label}")
    assert not failures, "\n\n".join(failures)
    assert len(operations) >= 13  # every documented operation was found
    assert total >= 300
    assert statuses[200] and statuses[400] and statuses[401]  # the requests reached the app
    assert not any(status >= 500 for status in statuses)
