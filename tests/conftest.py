"""Shared fixtures: gpiozero's MockFactory, temporary data dirs, the real pcscd."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

pytest_plugins = ["pcsc_fixtures"]


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
