from __future__ import annotations

import os
from pathlib import Path

import pytest

from doorpi.sync.keys import SiteKey
from sync.helpers import GateRig, MemorySink


@pytest.fixture
def site() -> SiteKey:
    return SiteKey(os.urandom(32), "Test Court")


@pytest.fixture
def rig(data_dir: Path, site: SiteKey) -> GateRig:
    return GateRig(data_dir, site, MemorySink())
