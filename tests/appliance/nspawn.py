"""A real systemd (PID 1) for the appliance's units: this machine's OS booted in a
systemd-nspawn container, the doorpi units installed in it as the image installs them.

Why: `systemd-analyze verify` and `security --offline` (test_systemd.py) read the units;
they cannot say whether the gate starts inside its sandbox (MemoryDenyWriteExecute= and
the system-call filter against TFLite and the face worker, ProtectSystem= against the
data folder, the watchdog pings reaching PID 1). Booting the units under systemd does:
it found `doorpi selftest` failing its own data-folder check at every boot.

The container: ``systemd-nspawn -D / --volatile=yes`` (systemd-nspawn(1): a tmpfs root
with this machine's /usr read-only, so the installed systemd 252 boots as PID 1; /etc
and /var start empty), no registration with a host systemd (this machine has none),
the repository and CACHE (the venv, the models, the test's files) bound read-only at
their own paths. The gate's
venv is built with Debian's /usr/bin/python3, as the image's is: a venv whose Python
lives under /root would be hidden by the units' ProtectHome=yes. Commands run inside
with nsenter(1) on the container's PID 1.

What this is not: a Raspberry Pi (no GPIO chip: the gate runs with ``--sim`` pins; no
camera; no reader in the container's pcscd) and not the image's read-only root.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Outside /tmp, /var/tmp, /home and /root: the units' PrivateTmp= and ProtectHome= hide
# those, so a venv, a model or a script there could not be run by them (a clone under
# /tmp failed that way). Bound read-only into the container at the same path.
CACHE = Path(os.environ.get("DOORPI_NSPAWN_CACHE", "/var/cache/doorpi-test"))
DEBIAN_PYTHON = Path("/usr/bin/python3")
KEEP_VENVS = 2
# The image installs these (firmware_image/stage-doorpi/01-doorpi/00-run.sh).
UNIT_GLOBS = ("*.service", "*.timer")


class ContainerError(AssertionError):
    """Building or booting the container failed (one line naming the step)."""


def _tree_stamp() -> str:
    """A hash of what the venv is built from: the package's sources and pyproject."""
    h = hashlib.sha256()
    for path in sorted([REPO / "pyproject.toml", *(REPO / "src").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def gate_venv() -> Path:
    """The gate's venv as the image builds it (Debian's Python, ``doorpi[reader,face]``
    installed, not editable), one per state of the sources (``CACHE/venv-STAMP``), built
    under a lock so that two test runs never build one at once; of the venvs of other
    sources the newest KEEP_VENVS are kept (another run may be using one)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        want = _tree_stamp()
        others = sorted((p for p in CACHE.glob("venv-*") if p.name != f"venv-{want}"),
                        key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
        for old in others[KEEP_VENVS:]:  # ~220 MB each
            shutil.rmtree(old, ignore_errors=True)
        venv = CACHE / f"venv-{want}"
        if not (venv / "ready").exists():
            _build_venv(venv)
        return venv


def _build_venv(venv: Path) -> None:
    if not DEBIAN_PYTHON.exists():
        raise ContainerError(f"{DEBIAN_PYTHON} missing (apt-get install python3-venv)")
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [str(DEBIAN_PYTHON), "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", "--no-warn-script-location",
         f"{REPO}[reader,face]"],
    ]  # fmt: skip
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ContainerError(f"{' '.join(cmd[:3])}: exit {done.returncode}: {tail}")
    shutil.rmtree(REPO / "build" / "lib", ignore_errors=True)  # pip's build leftovers
    (venv / "ready").write_text("")


def gate_models(out: Path) -> Path:
    """/opt/doorpi/models as the image lays it out, in ``out``: models/build plus the
    manifest and the known answers (firmware_image/build.sh)."""
    shutil.copytree(REPO / "models" / "build", out)
    for name in ("manifest.toml", "kat.json"):
        shutil.copy2(REPO / "models" / name, out / name)
    for path in [out, *out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


class Container:
    """This machine's OS booted under systemd-nspawn; ``run`` executes inside."""

    def __init__(self, binds_ro: list[Path], log: Path, name: str | None = None) -> None:
        self.name = name or f"doorpi-test-{os.getpid()}"
        self.binds_ro = binds_ro
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.log = log  # systemd-nspawn's own output (its last lines go into a boot error)

    def boot(self, timeout: float = 90.0) -> None:
        if not shutil.which("systemd-nspawn"):
            raise ContainerError("systemd-nspawn missing (apt-get install systemd-container)")
        cmd = ["systemd-nspawn", "-D", "/", "--volatile=yes", "--register=no", "--keep-unit",
               f"--machine={self.name}", "--console=pipe", "--quiet",
               *(f"--bind-ro={p}" for p in self.binds_ro), "-b"]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise ContainerError(
                    f"systemd-nspawn exited {self.proc.returncode}: {self._tail()}"
                )
            self.leader = self._leader()
            if self.leader:
                state = self.run("systemctl", "is-system-running", "--wait", check=False,
                                 timeout=max(1.0, end - time.monotonic()))  # fmt: skip
                if state.stdout.strip() in ("running", "degraded"):
                    return
            time.sleep(0.2)
        raise ContainerError(f"the container's systemd did not finish booting in {timeout:.0f} s")

    def _leader(self) -> int:
        """The container's PID 1 (systemd), seen from here: systemd-nspawn's child."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            return 0
        for pid in pids:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return pid
            except OSError:
                continue
        return 0

    def _tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return ""

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 120.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``cmd`` inside the container (all its namespaces, as root)."""
        assert self.leader, "the container is not booted"
        done = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", *cmd],
            capture_output=True, text=True, timeout=timeout, check=False, input=input,
        )  # fmt: skip
        if check and done.returncode:
            said = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ContainerError(
                f"`{' '.join(cmd)}` in the container: exit {done.returncode}: {said}"
            )
        return done

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show`` properties of ``unit``."""
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "-u", unit, "-o", "cat", "--no-pager", check=False).stdout

    def stop(self) -> None:
        """Power the container off (then SIGKILL if it will not) and reap nspawn."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn: ask the container's systemd to halt
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        self.leader = 0


def install_units(c: Container, venv: Path, models: Path, drop_ins: dict[str, str]) -> None:
    """Lay the appliance out in the container as the image does: /opt/doorpi/venv and
    models, the sysusers and tmpfiles files, the default config, every unit; plus
    ``drop_ins`` (unit name -> [Service] lines) for what a container cannot be."""
    units = sorted(p for g in UNIT_GLOBS for p in (REPO / "systemd").glob(g))
    script = [
        "set -eu",
        "mkdir -p /opt/doorpi /etc/sysusers.d /etc/tmpfiles.d /etc/doorpi",
        f"ln -sfn {venv} /opt/doorpi/venv",
        f"ln -sfn {models} /opt/doorpi/models",
        f"install -m 0644 {REPO}/systemd/doorpi-sysusers.conf /etc/sysusers.d/doorpi.conf",
        f"install -m 0644 {REPO}/systemd/doorpi-tmpfiles.conf /etc/tmpfiles.d/doorpi.conf",
        "systemd-sysusers",
        f"install -m 0640 {REPO}/src/doorpi/data/doorpi.toml /etc/doorpi/doorpi.toml",
        "systemd-tmpfiles --create /etc/tmpfiles.d/doorpi.conf",
        *(f"install -m 0644 {u} /etc/systemd/system/{u.name}" for u in units),
    ]
    for unit, body in drop_ins.items():
        script += [f"mkdir -p /etc/systemd/system/{unit}.d",
                   f"cat > /etc/systemd/system/{unit}.d/test.conf <<'EOF'\n[Service]\n{body}\nEOF"]  # fmt: skip
    script.append("systemctl daemon-reload")
    c.run("/bin/sh", "-c", "\n".join(script))
