"""Shared fixtures: gpiozero's MockFactory, temporary data dirs, the real pcscd."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from doorpi.fsutil import find_shared_dir

pytest_plugins = ["pcsc_fixtures"]


@pytest.fixture(autouse=True)
def _cli_site_zone():
    """The CLI keeps the loaded config's zone in a module global (doorpi.cli.common:
    every time it shows is site-local); a test that runs the CLI in this process with
    another site's zone must not change how later tests' times read."""
    from doorpi.cli import common

    saved = list(common._site_tz)
    yield
    common._site_tz[:] = saved


@pytest.fixture
def mock_factory():
    factory = MockFactory()
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = None


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(mode=0o700)
    return d


REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    found = find_shared_dir(REPO, need="faces")
    if found is None:
        pytest.fail("shared photos not found (set DOORPI_SHARED_DIR to the folder holding faces/)")
    return found


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return _shared() / "faces"


@pytest.fixture(scope="session")
def nonfaces_dir() -> Path:
    return _shared() / "faces-nonfaces"
