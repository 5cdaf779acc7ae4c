"""The systemd units, udev rule, sysusers and tmpfiles files of the appliance.

The units are checked with the real systemd tools (`systemd-analyze verify` and
`systemd-analyze security --offline`), not by reading text, because the failure modes
that matter on a door are systemd's: a unit that does not load, or a sandbox that is
weaker than it looks.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from doorpi.sync.keys import GATE_BOX_FILE, GATE_SIGN_FILE

REPO = Path(__file__).resolve().parents[2]
UNITS_DIR = REPO / "systemd"
UNITS = [
    "doorpi.service",
    "doorpi-firstboot.service",
    "doorpi-settings.service",
    "doorpi-sync@.service",
    "doorpi-selftest.service",
    "doorpi-pcscd-watch.service",
]
TIMERS = ["doorpi-pcscd-watch.timer"]
# Executables the units start, relative to the device root.
EXECUTABLES = ["opt/doorpi/venv/bin/doorpi", "opt/doorpi/libexec/doorpi-usb-sync",
               "opt/doorpi/venv/bin/python", "usr/bin/grep"]  # fmt: skip
SECURITY_LIMIT = 2.0
# The TPM key root's device (docs/keys.md) and its device-cgroup rule: the kernel's tpm
# driver registers one char region named "tpm" (/proc/devices) for tpmN and tpmrmN.
TPM_DEVICE = "/dev/tpmrm0"
TPM_ALLOW = "char-tpm rw"

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
assert SYSTEMD_ANALYZE, "systemd-analyze is required (apt-get install systemd)"


def parse_unit(path: Path) -> dict[str, list[str]]:
    """Read a unit file into "Section.Key" -> values; repeated keys accumulate as in systemd."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


@pytest.fixture()
def device_root(tmp_path: Path) -> Path:
    """A fake device root with the units installed and stub executables.

    `systemd-analyze verify` always fails when an ExecStart binary does not exist,
    and on this machine /opt/doorpi is not installed. Instead of weakening the check,
    the units are verified with `--root=` pointing at this directory, where the
    binaries exist as executable stubs at the same absolute paths as on the Pi: a typo
    in a path still fails, a wrong value still fails.
    """
    unit_dir = tmp_path / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for unit in UNITS + TIMERS:
        shutil.copy(UNITS_DIR / unit, unit_dir / unit)
    for exe in EXECUTABLES:
        target = tmp_path / exe
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\nexit 0\n")
        target.chmod(0o755)
    return tmp_path


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    """Run `systemd-analyze verify`; --recursive-errors=no makes bad values exit 1."""
    return subprocess.run(
        [
            str(SYSTEMD_ANALYZE),
            "verify",
            "--recursive-errors=no",
            f"--root={root}",
            str(root / "etc/systemd/system" / unit),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def security_score(unit_path: Path, threshold: float) -> tuple[int, float, str]:
    """Return (exit code, overall exposure, output) of the offline security analysis.

    systemd 252 takes --threshold as an integer on its internal 0..100 scale, where
    the printed exposure 0.0..10.0 is that value divided by ten: 2.0 is passed as 20.
    """
    proc = subprocess.run(
        [
            str(SYSTEMD_ANALYZE),
            "security",
            "--offline=yes",
            f"--threshold={round(threshold * 10)}",
            str(unit_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=unit_path.parent,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return proc.returncode, float(match.group(1)), proc.stdout


@pytest.mark.parametrize("unit", UNITS + TIMERS)
def test_unit_verifies(device_root: Path, unit: str) -> None:
    proc = verify(device_root, unit)
    assert proc.returncode == 0, proc.stderr
    # Unknown keys are only warnings (exit 0): a clean unit prints nothing at all.
    assert proc.stderr.strip() == "", proc.stderr


def test_verify_catches_a_bad_value(device_root: Path) -> None:
    """The harness is able to fail: a malformed WatchdogSec= is rejected."""
    unit = device_root / "etc/systemd/system/doorpi.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=10s", "WatchdogSec=ten"))
    assert verify(device_root, "doorpi.service").returncode != 0


def test_verify_catches_a_missing_executable(device_root: Path) -> None:
    """The stub root matters: without the binary at the unit's path, verify fails."""
    (device_root / EXECUTABLES[0]).unlink()
    proc = verify(device_root, "doorpi.service")
    assert proc.returncode != 0
    assert "/opt/doorpi/venv/bin/doorpi" in proc.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_within_limit(unit: str) -> None:
    code, score, output = security_score(UNITS_DIR / unit, SECURITY_LIMIT)
    assert score <= SECURITY_LIMIT, output
    assert code == 0, output


def test_main_unit_score_is_low() -> None:
    """The gate reaches the network of nothing and holds no capability: it scores < 1."""
    _, score, output = security_score(UNITS_DIR / "doorpi.service", SECURITY_LIMIT)
    assert score < 1.0, output


def test_security_threshold_fails_a_weak_unit(tmp_path: Path) -> None:
    """The same check fails a unit without the sandbox, so the pass above means something."""
    weak = tmp_path / "weak.service"
    weak.write_text("[Service]\nExecStart=/bin/true\n")
    code, score, _ = security_score(weak, SECURITY_LIMIT)
    assert score > SECURITY_LIMIT
    assert code != 0


def test_gate_unit_settings() -> None:
    unit = parse_unit(UNITS_DIR / "doorpi.service")
    expect = {
        "Service.Type": ["notify"],
        "Service.NotifyAccess": ["main"],
        "Service.Restart": ["always"],
        "Service.User": ["doorpi"],
        "Service.PrivateNetwork": ["yes"],
        "Service.IPAddressDeny": ["any"],
        "Service.RestrictAddressFamilies": ["AF_UNIX"],
        "Service.CapabilityBoundingSet": [""],
        "Service.ProtectSystem": ["strict"],
        "Service.ReadWritePaths": ["/var/lib/doorpi"],
        "Service.DevicePolicy": ["closed"],
        "Service.NoNewPrivileges": ["yes"],
        "Service.MemoryDenyWriteExecute": ["yes"],
    }
    for key, value in expect.items():
        assert unit.get(key) == value, key
    assert set(unit["Service.SupplementaryGroups"][0].split()) == {"gpio", "video", "input", "tss"}
    assert unit["Service.ExecStart"][0].endswith(" run")
    assert "/etc/doorpi/doorpi.toml" in unit["Service.ExecStart"][0]
    # Whenever the gate stops (crash, exit 2, watchdog) the strike line is driven safe.
    (post,) = unit["Service.ExecStopPost"]
    assert post.endswith(" strike-safe") and "/etc/doorpi/doorpi.toml" in post
    # A watchdog and a bounded restart loop.
    assert unit["Service.WatchdogSec"] and unit["Unit.StartLimitBurst"]
    # After the burst the device reboots instead of leaving the door without a gate.
    assert unit["Unit.StartLimitAction"] == ["reboot"]
    allowed = {line.split()[0] for line in unit["Service.DeviceAllow"]}
    assert "char-gpiochip" in allowed and "char-video4linux" in allowed
    assert not any(dev.startswith("block-") for dev in allowed), "the gate needs no disk"
    assert TPM_ALLOW in unit["Service.DeviceAllow"], "the TPM key root (docs/keys.md)"


def test_sync_unit_mounts_privately() -> None:
    unit = parse_unit(UNITS_DIR / "doorpi-sync@.service")
    assert unit["Service.PrivateMounts"] == ["yes"]
    assert unit["Service.PrivateNetwork"] == ["yes"]
    assert unit["Unit.BindsTo"] == ["dev-%i.device"]
    assert unit["Unit.ConditionPathExists"] == [f"/var/lib/doorpi/keys/{GATE_BOX_FILE}"]
    caps = set(unit["Service.CapabilityBoundingSet"][0].split())
    assert caps == {"CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID"}
    script = (UNITS_DIR / "doorpi-usb-sync").read_text()
    assert "nosuid,nodev,noexec" in script
    assert "sync import" in script and "umount" in script
    assert os.access(UNITS_DIR / "doorpi-usb-sync", os.X_OK)


def test_firstboot_runs_only_without_keys() -> None:
    unit = parse_unit(UNITS_DIR / "doorpi-firstboot.service")
    assert unit["Unit.ConditionPathExists"] == [f"!/var/lib/doorpi/keys/{GATE_SIGN_FILE}"]
    # The key root goes into the TPM when there is one (tests/privacy: --tpm-if-present).
    assert unit["Service.ExecStart"][0].endswith(f"keys init --tpm-if-present {TPM_DEVICE}")
    assert "console" in unit["Service.StandardOutput"][0]
    assert "doorpi.service" in unit["Unit.Before"][0]


def test_firstboot_may_open_the_tpm_and_no_other_device() -> None:
    """PrivateDevices=yes gave way to the device cgroup so /dev/tpmrm0 can be opened:
    the TPM is the one device added, and @raw-io stays denied as PrivateDevices did."""
    unit = parse_unit(UNITS_DIR / "doorpi-firstboot.service")
    assert unit["Service.DevicePolicy"] == ["closed"]
    assert unit["Service.DeviceAllow"] == [TPM_ALLOW]
    assert unit["Service.SupplementaryGroups"] == ["tss"]
    assert unit["Service.CapabilityBoundingSet"] == [""]
    assert unit["Service.PrivateNetwork"] == ["yes"]
    denied = " ".join(v[1:] for v in unit["Service.SystemCallFilter"] if v.startswith("~"))
    assert {"@raw-io", "@privileged"} <= set(denied.split())


def test_units_that_open_the_store_reach_the_tpm_key_root() -> None:
    """Every unit whose process reads the device key (gate, first boot, USB import) may
    open /dev/tpmrm0 (group tss, "tpm" device class); the selftest and settings units,
    which never read a key, may not."""
    for name in ("doorpi.service", "doorpi-firstboot.service", "doorpi-sync@.service"):
        assert TPM_ALLOW in parse_unit(UNITS_DIR / name)["Service.DeviceAllow"], name
    for name in ("doorpi-selftest.service", "doorpi-settings.service"):
        unit = parse_unit(UNITS_DIR / name)
        assert not any("tpm" in v for v in unit.get("Service.DeviceAllow", [])), name
        assert "tss" not in " ".join(unit.get("Service.SupplementaryGroups", [])), name
    # The import runs as the gate's user with its groups cleared but for tss.
    script = (UNITS_DIR / "doorpi-usb-sync").read_text()
    assert "getent group tss" in script and '"$gate_groups"' in script
    assert re.search(r'as_gate\(\) \{ setpriv [^}]*"\$gate_groups"', script)
    assert re.search(r"as_stick\(\) \{ setpriv [^}]*--clear-groups", script)


def test_usb_sync_gives_the_gate_user_group_tss_alone(tmp_path: Path) -> None:
    """The import's privilege drop keeps tss (the TPM) and nothing else: the script's
    own as_gate() run with a stand-in setpriv that prints its arguments."""
    script = (UNITS_DIR / "doorpi-usb-sync").read_text()
    start = script.index('tss="$(getent group tss')
    end = script.index("\n", script.index("as_gate()")) + 1
    probe = tmp_path / "probe.sh"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in {"setpriv": 'echo "$@"', "getent": 'echo "tss:x:4242:"'}.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    probe.write_text("uid=7\ngid=8\n" + script[start:end] + "as_gate doorpi sync import -\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = subprocess.run(["sh", str(probe)], capture_output=True, text=True, env=env,
                         check=True).stdout.split()  # fmt: skip
    assert out[:3] == ["--reuid=7", "--regid=8", "--groups=4242"], out
    assert "--clear-groups" not in out and out[-4:] == ["doorpi", "sync", "import", "-"]
    (bin_dir / "getent").write_text("#!/bin/sh\nexit 2\n")  # no tss group on this root
    out = subprocess.run(["sh", str(probe)], capture_output=True, text=True, env=env,
                         check=True).stdout.split()  # fmt: skip
    assert out[:3] == ["--reuid=7", "--regid=8", "--clear-groups"], out


def test_udev_rule_starts_sync_only_for_usb_filesystems() -> None:
    rules = [
        line
        for line in (UNITS_DIR / "99-doorpi-usb.rules").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules
    for rule in rules:
        assert 'ACTION=="add"' in rule
        assert 'ENV{ID_BUS}=="usb"' in rule
        assert 'ENV{ID_FS_USAGE}=="filesystem"' in rule
        assert 'ENV{SYSTEMD_WANTS}+="doorpi-sync@%k.service"' in rule
        assert 'TAG+="systemd"' in rule
        # Never the Pi's own boot partition when it boots from USB (Raspberry Pi OS: bootfs).
        assert 'ENV{ID_FS_LABEL}!="bootfs|boot|BOOT|system-boot"' in rule
        # udev must not run the import itself (it kills long RUN+= programs).
        assert "RUN" not in rule


def test_usb_sync_script_refuses_non_usb_devices(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["sh", str(UNITS_DIR / "doorpi-usb-sync"), "/dev/mmcblk0p2"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], "RUNTIME_DIRECTORY": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "not a USB disk" in proc.stderr
    assert not (tmp_path / "usb").exists()


def test_sysusers_and_tmpfiles_create_user_and_private_data_dir(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNITS_DIR / "doorpi-sysusers.conf")],
        check=True,
        capture_output=True,
    )
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    assert passwd["doorpi"][6] == "/usr/sbin/nologin"
    uid = int(passwd["doorpi"][2])
    assert 0 < uid < 1000, "a system user"
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (tmp_path / "etc/group").read_text().splitlines()
    }
    for group in ("gpio", "video", "input", "tss"):
        assert "doorpi" in groups[group]
    # The stick's own user: a system user apart from the gate's, in none of its groups.
    stick = passwd["doorpi-stick"]
    assert stick[6] == "/usr/sbin/nologin" and 0 < int(stick[2]) < 1000
    assert int(stick[2]) != uid and int(stick[3]) != int(passwd["doorpi"][3])
    assert not any("doorpi-stick" in members for members in groups.values())

    subprocess.run(
        [
            "systemd-tmpfiles",
            f"--root={tmp_path}",
            "--create",
            str(UNITS_DIR / "doorpi-tmpfiles.conf"),
        ],
        check=True,
        capture_output=True,
    )
    for rel in ("var/lib/doorpi", "var/lib/doorpi/keys"):
        st = (tmp_path / rel).stat()
        assert stat.S_IMODE(st.st_mode) == 0o700, rel
        assert st.st_uid == uid, rel
    conf = (tmp_path / "etc/doorpi").stat()
    assert stat.S_IMODE(conf.st_mode) == 0o750


MDWE_PROBE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
# PR_SET_MDWE (65), PR_MDWE_REFUSE_EXEC_GAIN (1): the kernel's version of systemd's
# MemoryDenyWriteExecute= (systemd >= 254 uses it; 252 uses an equivalent seccomp filter).
assert libc.prctl(65, 1, 0, 0, 0) == 0, ctypes.get_errno()
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit("W+X mapping was allowed: the restriction is not active")
import numpy as np
a = np.random.default_rng(0).random((64, 64))
assert np.allclose(a @ np.linalg.inv(a), np.eye(64), atol=1e-6)
from ai_edge_litert.interpreter import Interpreter
for path in sys.argv[1:]:
    it = Interpreter(model_path=path, num_threads=2)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], dtype=inp["dtype"]))
    it.invoke()
print("ok", len(sys.argv) - 1)
"""


def test_numpy_and_tflite_survive_memory_deny_write_execute() -> None:
    """MemoryDenyWriteExecute=yes must not break the face pipeline's runtime.

    Runs numpy and the TFLite runtime (with any built model found) in a process where
    the kernel refuses writable+executable memory, as the unit asks of systemd.
    """
    models_dir = Path(os.environ.get("DOORPI_MODELS_DIR", REPO / "models" / "build"))
    models = sorted(str(p) for p in models_dir.glob("**/*.tflite")) if models_dir.is_dir() else []
    proc = subprocess.run(
        [sys.executable, "-c", MDWE_PROBE, *models],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ok {len(models)}"


def test_pcscd_watch_runs_only_beside_the_gate_and_keeps_its_state() -> None:
    """doorpi-pcscd-watch (doorpi.pcscdwatch): started by its timer every 30 s, never
    while the gate is stopped, its state file in a /run folder that outlives each run;
    it reads the gate's runtime file, never its data."""
    from doorpi.pcscdwatch import GATE_FAULTS, STATE_FILE

    unit = parse_unit(UNITS_DIR / "doorpi-pcscd-watch.service")
    assert unit["Service.Type"] == ["oneshot"] and unit["Service.User"] == ["root"]
    assert unit["Unit.Requisite"] == ["doorpi.service"] and unit["Unit.After"] == ["doorpi.service"]
    argv = unit["Service.ExecStart"][0].split()
    assert argv[:3] == ["/opt/doorpi/venv/bin/python", "-m", "doorpi.pcscdwatch"]
    assert argv[0] == "/" + EXECUTABLES[2]
    assert argv[3:] == ["--faults", str(GATE_FAULTS), "--state", str(STATE_FILE)]
    assert unit["Service.RuntimeDirectory"] == [STATE_FILE.parent.name]
    # A oneshot stops after every run: without Preserve systemd removes the folder, and
    # the record of the last restart (the rate limit) with it.
    assert unit["Service.RuntimeDirectoryPreserve"] == ["yes"]
    assert unit["Service.RuntimeDirectoryMode"] == ["0700"]
    # The gate's keys and database are out of its reach; /run/doorpi is read-only to it.
    assert unit["Service.InaccessiblePaths"] == ["-/var/lib/doorpi"]
    assert not {"ReadWritePaths", "ReadOnlyPaths", "BindPaths", "TemporaryFileSystem",
                "RequiresMountsFor"} & {k.split(".")[1] for k in unit}  # fmt: skip
    assert unit["Service.CapabilityBoundingSet"] == ["CAP_DAC_READ_SEARCH"]
    assert unit["Service.CPUWeight"] == ["idle"]  # never a CPU the gate wants
    assert unit["Service.PrivateNetwork"] == ["yes"] and unit["Service.ProtectSystem"] == ["strict"]
    assert "Install.WantedBy" not in unit, "the timer starts it, nothing else"
    timer = parse_unit(UNITS_DIR / "doorpi-pcscd-watch.timer")
    assert timer["Timer.OnBootSec"] == ["2min"] and timer["Timer.OnUnitActiveSec"] == ["30s"]
    assert timer["Timer.AccuracySec"] == ["1s"]  # the default 1 min would stretch 30 s
    assert timer["Install.WantedBy"] == ["timers.target"]


def _exec_condition(faults: Path) -> list[str]:
    """The unit's ExecCondition= command line, split as systemd splits it (double
    quotes group words), the gate's file replaced by ``faults``."""
    import shlex

    from doorpi.pcscdwatch import GATE_FAULTS

    (line,) = parse_unit(UNITS_DIR / "doorpi-pcscd-watch.service")["Service.ExecCondition"]
    argv = shlex.split(line)
    assert argv[-1] == str(GATE_FAULTS), argv  # the file the watch itself reads
    return [*argv[:-1], str(faults)]


def test_pcscd_watch_condition_runs_python_only_on_a_pcsc_wait(tmp_path: Path) -> None:
    """The ExecCondition= command itself, on runtime files the real FaultBoard writes:
    exit 0 (systemd runs the watch) only while the gate reports a wait on pcscd; 1 for
    other faults or none, 2 without a file (both: skipped, not failed)."""
    from doorpi.devicewatch import READER_FAULT, READER_WAITS_ON
    from doorpi.faults import FaultBoard
    from doorpi.pcscdwatch import pcsc_call

    faults = tmp_path / "run" / "faults.json"
    argv = _exec_condition(faults)
    assert argv[0] == "/usr/bin/grep" and os.access(argv[0], os.X_OK)
    text = argv[-2]
    assert text == READER_WAITS_ON + "SCard"  # what the gate writes, what the watch acts on

    def condition() -> int:
        return subprocess.run(argv, capture_output=True, timeout=10).returncode

    assert condition() == 2  # no gate running: no file
    board = FaultBoard(_NoDb())
    board.publish(faults)
    assert condition() == 1  # a healthy gate
    frozen = f"{READER_WAITS_ON}SCardGetStatusChange (pcscd frozen or hung?)"
    for detail, runs in [
        ("card reader thread has stopped", 1),
        ("card reader thread stuck outside PC/SC (gate fault)", 1),
        ("card reader thread not answering (pcscd frozen or hung?)", 1),
        (frozen, 0),
        (f"{READER_WAITS_ON}SCardTransmit (pcscd frozen or hung?)", 0),
    ]:
        board.set(READER_FAULT, detail, 1.0)
        assert condition() == runs, detail
        # The grep only ever lets more through than the watch acts on, never less.
        assert runs == 0 or not pcsc_call(detail)
    board.set("exit_button", "pressed for over 30 s (stuck?)", 1.0)
    assert condition() == 0  # other faults beside it change nothing
    board.clear(READER_FAULT)
    assert condition() == 1
    board.unpublish()
    assert not faults.exists() and condition() == 2


class _NoDb:
    """A database that refuses every write, as a read-only partition does."""

    def execute(self, *_args: Any) -> Any:
        raise OSError(30, "Read-only file system")


def test_selftest_unit_reports_without_failing_the_boot() -> None:
    unit = parse_unit(UNITS_DIR / "doorpi-selftest.service")
    assert unit["Service.ExecStart"][0].endswith(" selftest")
    assert unit["Service.SuccessExitStatus"] == ["1"]
    assert "console" in unit["Service.StandardOutput"][0]
    # It must see the data directory but never change it.
    assert unit["Service.ReadOnlyPaths"] == ["/var/lib/doorpi"]
    assert "ReadWritePaths" not in {k.split(".")[1] for k in unit}


# ---------------------------------------------------------------- many sticks at once (#15)


def _stub_tools(tmp_path: Path) -> dict[str, str]:
    """PATH with stand-ins for mount, umount, blkid, id and setpriv; the stand-in
    `doorpi` notes when each import starts and ends."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {
        "mount": f'echo "mount $*" >> {tmp_path}/calls',
        "umount": "exit 0",
        "blkid": "echo vfat",
        "id": "echo 1000",
        "setpriv": 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    doorpi = bin_dir / "doorpi"
    doorpi.write_text(
        "#!/bin/sh\n"
        'case "$*" in *"keys show"*) echo \'{"fingerprint": "' + "ab" * 16 + "\"}'; exit 0;; esac\n"
        f'echo "start $(date +%s.%N)" >> {tmp_path}/log\n'
        "sleep 0.4\n"
        f'echo "end $(date +%s.%N)" >> {tmp_path}/log\n'
    )
    doorpi.chmod(0o755)
    python = bin_dir / "python"  # doorpi.sync.stickio: no bundle, nothing to deliver
    python.write_text('#!/bin/sh\ncase "$*" in *fetch*) exit 2;; esac\ncat >/dev/null\n')
    python.chmod(0o755)
    (tmp_path / "run").mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RUNTIME_DIRECTORY": str(tmp_path / "run"),
        "DOORPI_BIN": str(doorpi),
        "DOORPI_PYTHON": str(python),
        "DOORPI_SYNC_LOCK": str(tmp_path / "sync.lock"),
        "DOORPI_SYSTEM_DISKS": "mmcblk0",
    }


def test_usb_sync_runs_one_import_at_a_time(tmp_path: Path) -> None:
    env = _stub_tools(tmp_path)
    script = str(UNITS_DIR / "doorpi-usb-sync")
    procs = [
        subprocess.Popen(
            ["sh", script, f"/dev/sd{c}1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for c in "bcd"
    ]
    for p in procs:
        p.wait(timeout=30)
        assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    events = [line.split() for line in (tmp_path / "log").read_text().splitlines()]
    assert [e[0] for e in events] == ["start", "end"] * 3, events  # never two at once


def test_usb_sync_leaves_the_disk_the_gate_boots_from_alone(tmp_path: Path) -> None:
    env = {**_stub_tools(tmp_path), "DOORPI_SYSTEM_DISKS": "sda"}
    proc = subprocess.run(["sh", str(UNITS_DIR / "doorpi-usb-sync"), "/dev/sda1"],
                          capture_output=True, text=True, env=env, timeout=30)  # fmt: skip
    assert proc.returncode == 0 and "disk the gate runs from" in proc.stdout
    assert not (tmp_path / "calls").exists() and not (tmp_path / "log").exists()
    other = subprocess.run(["sh", str(UNITS_DIR / "doorpi-usb-sync"), "/dev/sdb1"],
                           capture_output=True, text=True, env=env, timeout=30)  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert "mount" in (tmp_path / "calls").read_text()


@pytest.mark.parametrize("boot", ["sda", "sdc"])
def test_usb_sync_finds_the_boot_disk_in_the_mount_table(tmp_path: Path, boot: str) -> None:
    """The script's own detection (findmnt on a mount table, not an override): a Pi
    booted from a USB disk has / and /boot/firmware on it; those partitions are skipped."""
    env = _stub_tools(tmp_path)
    del env["DOORPI_SYSTEM_DISKS"]
    table = tmp_path / "mountinfo"
    table.write_text(
        f"22 1 8:2 / / rw,noatime shared:1 - ext4 /dev/{boot}2 rw\n"
        f"25 22 8:1 / /boot/firmware rw,relatime shared:2 - vfat /dev/{boot}1 rw\n"
    )
    env["DOORPI_MOUNTINFO"] = str(table)
    script = str(UNITS_DIR / "doorpi-usb-sync")
    for part in ("1", "2", "10"):
        p = subprocess.run(["sh", script, f"/dev/{boot}{part}"], capture_output=True, text=True,
                           env=env, timeout=30)  # fmt: skip
        assert p.returncode == 0 and "disk the gate runs from" in p.stdout, p.stdout + p.stderr
    assert not (tmp_path / "calls").exists()
    stick = "sdb1"
    p = subprocess.run(["sh", script, f"/dev/{stick}"], capture_output=True, text=True, env=env,
                       timeout=30)  # fmt: skip
    assert p.returncode == 0 and "mount -t vfat" in (tmp_path / "calls").read_text()


def test_the_import_is_bounded_and_dies_before_the_gate() -> None:
    sync = parse_unit(UNITS_DIR / "doorpi-sync@.service")
    gate = parse_unit(UNITS_DIR / "doorpi.service")
    assert sync["Service.MemoryMax"] and sync["Service.MemorySwapMax"] == ["0"]
    assert int(sync["Service.OOMScoreAdjust"][0]) > 0 > int(gate["Service.OOMScoreAdjust"][0])
    assert sync["Service.RuntimeDirectory"] == ["doorpi-sync/%i"]


GATE_UID, STICK_UID = 61001, 61002  # uids with no passwd entry: nothing global is changed


@pytest.fixture
def split_site() -> Any:
    """A gate (data dir 0700 of GATE_UID, real keys) and a stick folder (0700 of
    STICK_UID, as the vfat mount's uid=/umask=0077 gives it), in a folder both can reach."""
    import tempfile

    from doorpi.config import default_config_text

    base = Path(tempfile.mkdtemp(prefix="doorpi-split-", dir="/tmp"))
    try:
        base.chmod(0o755)
        data = base / "gate"
        config = base / "doorpi.toml"
        config.write_text(default_config_text().replace("/var/lib/doorpi", str(data)))
        config.chmod(0o644)
        init = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(config), "keys",
                               "init"], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert init.returncode == 0, init.stdout + init.stderr
        fp = init.stdout.split("fingerprint")[1].split()[-1].replace("-", "")
        for p in [data, *data.rglob("*")]:
            os.chown(p, GATE_UID, GATE_UID, follow_symlinks=False)
        data.chmod(0o700)
        run = base / "run"  # the unit's RuntimeDirectory: root's, 0700
        stick = run / "usb"
        (stick / "doorpi").mkdir(parents=True)
        for p in (stick, stick / "doorpi"):
            os.chown(p, STICK_UID, STICK_UID)
            p.chmod(0o700)
        run.chmod(0o700)
        bin_dir = base / "bin"
        bin_dir.mkdir()
        stubs = {  # only the device, the mount and the user table are stand-ins
            "mount": f'echo "mount $*" >> {base}/calls',
            "umount": "exit 0",
            "blkid": "echo vfat",
            "id": f'case "$2" in doorpi-stick) echo {STICK_UID};; *) echo {GATE_UID};; esac',
        }
        for name, body in stubs.items():
            (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
            (bin_dir / name).chmod(0o755)
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHONPATH": str(REPO / "src"),
            "RUNTIME_DIRECTORY": str(run),
            "DOORPI_BIN": str(Path(sys.executable).parent / "doorpi"),
            "DOORPI_PYTHON": sys.executable,
            "DOORPI_CONFIG": str(config),
            "DOORPI_SYNC_LOCK": str(base / "sync.lock"),
            "DOORPI_SYSTEM_DISKS": "mmcblk0",
        }
        yield {"base": base, "data": data, "stick": stick, "fp": fp, "env": env}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as(uid: int, code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                           "--", sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip


def test_usb_sync_reads_the_stick_as_its_own_user_apart_from_the_gate(split_site: Any) -> None:
    """A real run of doorpi-usb-sync with real privilege drops (setpriv): the stick is
    read and written only by the stick's user, the bundle reaches the gate's user
    through a pipe, and neither user can open the other's files."""
    s = split_site
    script = str(UNITS_DIR / "doorpi-usb-sync")
    # A pairing visit: the gate's key and limits arrive on the stick, written by its user.
    p = subprocess.run(["sh", script, "/dev/sdb1"], capture_output=True, text=True,
                       env=s["env"], timeout=180)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no doorpi bundle" in p.stdout, p.stdout + p.stderr
    assert "uid=61002,gid=61002" in (s["base"] / "calls").read_text()
    gates = s["stick"] / "doorpi" / "gates"
    for name in (f"{s['fp']}.pub", f"{s['fp']}.rules"):
        assert (gates / name).stat().st_uid == STICK_UID, name
    report = s["stick"] / "doorpi" / f"{s['fp']}.report"
    assert report.stat().st_uid == STICK_UID
    assert not list((s["base"] / "run").glob("*.tar")) and not (s["base"] / "run/bundle").exists()
    # Apart: the gate's user cannot open the stick, the stick's user not the gate's data.
    env = {**s["env"], "HOME": "/"}
    assert "PermissionError" in _as(GATE_UID, f"open({str(report)!r}, 'rb')", env).stderr
    db = next(s["data"].glob("*.db"))
    assert "PermissionError" in _as(STICK_UID, f"open({str(db)!r}, 'rb')", env).stderr
    assert _as(GATE_UID, f"open({str(db)!r}, 'rb')", env).returncode == 0  # the probe works
    # A stick file that is no bundle is refused by the stick's user; the gate never runs.
    before = db.read_bytes()
    bundle = s["stick"] / "doorpi" / f"{s['fp']}.bundle"
    bundle.write_bytes(b"MZ" + b"\0" * 4096)
    os.chown(bundle, STICK_UID, STICK_UID)
    p = subprocess.run(["sh", script, "/dev/sdb1"], capture_output=True, text=True,
                       env=s["env"], timeout=180)  # fmt: skip
    assert p.returncode == 1 and "refused before import" in p.stderr
    assert "not a doorpi bundle" in p.stderr
    assert db.read_bytes() == before
