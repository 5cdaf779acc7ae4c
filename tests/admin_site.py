"""A site driven through real `doorpi` processes: the admin's laptop, one USB stick and
gates, for the tests of the admin's path (tests/sync/, tests/cards/).

A plain module (``tests/`` is on ``sys.path`` under pytest, as for pcsc_fixtures), not
conftest: import it with ``from admin_site import AdminSite``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


class AdminSite:
    """The laptop's admin directory (``root/admin``, as ``$DOORPI_ADMIN_DIR``), the stick
    (``root/stick``), the roster (``root/roster.toml``) and gates, each a config
    ``root/<name>.toml`` with its data in ``root/<name>``. PIN hashing runs at the floor
    cost (``opslimit = 1``) to keep the runs fast."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stick = root / "stick"
        self.stick.mkdir()
        self.admin = root / "admin"
        self.roster = root / "roster.toml"
        self.cfg: dict[str, Path] = {}
        self.data: dict[str, Path] = {}
        self.fp: dict[str, str] = {}  # each gate's full fingerprint (hex, no dashes)

    def run(self, *args: str, gate: str | None = None, code: int | None = 0) -> str:
        """``doorpi [--config <gate's>] ARGS``: stdout + stderr. Fails the test on another
        exit code than ``code`` (None: any) or on a Python traceback."""
        pre = ["--config", str(self.cfg[gate])] if gate else []
        env = {**os.environ, "DOORPI_ADMIN_DIR": str(self.admin)}
        p = subprocess.run([sys.executable, "-m", "doorpi", *pre, *args], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        out = p.stdout + p.stderr
        if code is not None:
            assert p.returncode == code, f"exit {p.returncode}: {out}"
        assert "Traceback" not in out, out
        return out

    def init_admin(self, site_name: str = "Test Court") -> None:
        """`doorpi admin init` and `admin stick`: the laptop's keys and the stick."""
        self.run("admin", "init", "--site-name", site_name)
        self.run("admin", "stick", str(self.stick))

    def gate(self, name: str, extra: str = "") -> None:
        """A gate called ``name`` (``extra``: more TOML for its config), `keys init`-ed."""
        cfg = self.root / f"{name}.toml"
        self.data[name] = self.root / name
        cfg.write_text(
            f'[site]\ndata_dir = "{self.data[name]}"\n[door]\nname = "{name}"\n'
            f"[pin]\nopslimit = 1\nmemlimit_kib = 8192\n{extra}"
        )
        self.cfg[name] = cfg
        out = self.run("keys", "init", gate=name)
        self.fp[name] = out.split("gate fingerprint: ")[1].split()[0].replace("-", "")

    def pair(self, name: str) -> tuple[str, str]:
        """The pairing visit: the gate trusts the site and leaves its key on the stick,
        the laptop registers it. Returns the outputs of the gate's `sync import` and of
        `admin gate add`."""
        self.run("keys", "trust-site", str(self.stick), "--yes", gate=name)
        imported = self.run("sync", "import", str(self.stick), gate=name, code=2)
        pub = self.stick / "doorpi" / "gates" / f"{self.fp[name]}.pub"
        # pairing needs the full fingerprint
        added = self.run("admin", "gate", "add", str(pub), "--fingerprint", self.fp[name])
        return imported, added

    def write_roster(self, text: str) -> Path:
        """The roster file, private to its owner as the laptop keeps it."""
        self.roster.write_text(text)
        self.roster.chmod(0o600)
        return self.roster

    def report(self, name: str) -> Path:
        """Where gate ``name`` leaves its report on the stick."""
        return self.stick / "doorpi" / f"{self.fp[name]}.report"
