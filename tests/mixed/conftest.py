import json
from pathlib import Path

import pytest

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "mixed"


def load_json(name):
    return json.loads((FIX / name).read_text())


@pytest.fixture(scope="session")
def fixdir():
    return FIX
