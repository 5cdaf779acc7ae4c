"""The console as the admin starts it: a real `doorpi admin console` subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


class Console:
    def __init__(self, admin_dir: Path, lang: str) -> None:
        env = {**os.environ, "TZ": "UTC"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "doorpi", "admin", "console", "--no-browser",
             "--admin-dir", str(admin_dir), "--lang", lang],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:(\d+))/login\?token=(\S+)", line)
        assert m, (
            f"the console printed no address: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
        )
        self.base, self.port, self.token = m.group(1), int(m.group(2)), m.group(3)
        self.login = f"{self.base}/login?token={self.token}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def console_factory(tmp_path: Path) -> Iterator:
    started: list[Console] = []

    def start(lang: str = "en", admin_dir: Path | None = None) -> Console:
        c = Console(admin_dir or tmp_path / "admin", lang)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()
