"""Contract fixtures: the fixed dataset, loaded into the test stack."""
from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT, forget_reference_data
from tests.contract import dataset

sys.path.insert(0, str(ROOT / "scripts"))  # scripts/contract_diff.py: normalise and diff


def load_dataset(dsn: str, api) -> None:
    dataset.load(dsn)
    forget_reference_data(api)


@pytest.fixture(scope="module")
def contract_db(dsn, api) -> str:
    """The fixed dataset, loaded once per module (tests that write reload it themselves)."""
    load_dataset(dsn, api)
    return dsn
