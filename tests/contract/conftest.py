"""Contract fixtures: the fixed dataset, loaded into the test stack."""

from __future__ import annotations

import pytest

from tests.helpers import load_contract_dataset


@pytest.fixture(scope="module")
def contract_db(dsn, api) -> str:
    """The fixed dataset, loaded once per module (tests that write reload it themselves)."""
    return load_contract_dataset(dsn, api)
