"""`doorpi selftest`: is this installation able to run the door?

Why: after flashing, wiring or an update, the installer needs one command that says
what is wrong in plain words (wrong key mode, reader not seen, model corrupted)
before a resident finds out at the door. Each check is a small function returning a
``CheckResult`` so tests can run it against temporary directories and fake devices;
``run_checks`` wires them to a configuration. Exit code 0 means no FAIL (WARN is for
things that are fine in some setups, such as no camera while face is disabled).

Also runnable as ``python -m doorpi.selftest`` (used by firmware_image/rootfs-test.sh).
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import re
import sqlite3
import stat
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from doorpi.fsutil import read_only_layer, sha256_file

PASS = "PASS"
WARN = "WARN"
FAIL = "FAIL"

DEFAULT_CONFIG = "/etc/doorpi/doorpi.toml"
DEFAULT_MODELS_DIR = "/opt/doorpi/models"
DB_NAME = "doorpi.db"
KEYS_DIR = "keys"
# The gate's private keys as `doorpi keys init` names them (doorpi.sync.keys; the tests
# check the names agree). Not imported: selftest must work even if that module breaks.
GATE_KEY_FILES = ("gate-x25519.key", "gate-ed25519.key")


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: a status and one line an installer can act on."""

    status: str
    detail: str


@dataclass(frozen=True)
class NamedResult:
    """A check's result with the check's name, as printed and as JSON."""

    name: str
    status: str
    detail: str


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _default_config() -> dict[str, Any]:
    text = resources.files("doorpi").joinpath("data/doorpi.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check_config(path: Path) -> tuple[CheckResult, dict[str, Any]]:
    """Parse the configuration; returns the raw settings merged over the defaults.

    Uses the project's validating loader (``doorpi.config.load_config``) when it is
    installed, so a FAIL here names the same key the gate would refuse; the values the
    other checks need are read from the TOML itself so this module does not depend on
    the loader's types.
    """
    defaults = _default_config()
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        return CheckResult(FAIL, f"{path}: not found"), defaults
    except PermissionError:
        return CheckResult(FAIL, f"{path}: not readable by this user"), defaults
    except tomllib.TOMLDecodeError as exc:
        return CheckResult(FAIL, f"{path}: invalid TOML: {exc}"), defaults
    settings = _merge(defaults, raw)
    try:
        config_module = importlib.import_module("doorpi.config")
    except ImportError:
        config_module = None
    load = getattr(config_module, "load_config", None)
    if callable(load):
        try:
            load(path)
        except Exception as exc:  # the loader's own error type names the key
            return CheckResult(FAIL, f"{path}: {exc}"), settings
        warn = getattr(config_module, "config_warnings", None)
        warnings = warn(load(path)) if callable(warn) else []
        if warnings:
            return CheckResult(WARN, f"{path}: valid; " + "; ".join(warnings)), settings
        return CheckResult(PASS, f"{path}: valid"), settings
    return CheckResult(PASS, f"{path}: parsed (TOML only; no validating loader)"), settings


def check_data_dir(data_dir: Path) -> CheckResult:
    """The data directory exists and only its owner can enter it (0700)."""
    if not data_dir.is_dir():
        return CheckResult(FAIL, f"{data_dir}: missing (systemd-tmpfiles --create creates it)")
    mode = _mode(data_dir)
    if mode & 0o077:
        return CheckResult(FAIL, f"{data_dir}: mode {mode:04o}, want 0700")
    if not os.access(data_dir, os.R_OK | os.X_OK):
        return CheckResult(FAIL, f"{data_dir}: not readable by this user (run as doorpi)")
    if not os.access(data_dir, os.W_OK):
        # os.access says EROFS for a read-only mount too: tell the partition (a fault the
        # gate must live with) from this check's own sandbox (doorpi-selftest.service
        # mounts the folder read-only for itself: ReadOnlyPaths=), which is no fault.
        layer = read_only_layer(data_dir)
        if layer == "file system":
            return CheckResult(FAIL, f"{data_dir}: the data partition is mounted read-only "
                               "(file system errors? docs/recovery.md)")  # fmt: skip
        if layer != "mount" or data_dir.stat().st_uid != os.geteuid():
            return CheckResult(FAIL, f"{data_dir}: not writable by this user (run as doorpi)")
        return CheckResult(PASS, f"{data_dir}: mode 0700 (read-only to this check only)")
    return CheckResult(PASS, f"{data_dir}: mode 0700")


def check_keys(data_dir: Path) -> CheckResult:
    """Gate keys exist; private key files are 0600 in a 0700 directory.

    ``*.pub`` files may be readable: they are public by design.
    """
    keys = data_dir / KEYS_DIR
    if not keys.is_dir():
        return CheckResult(FAIL, f"{keys}: missing (run: doorpi keys init)")
    try:
        mode = _mode(keys)
        files = sorted(p for p in keys.iterdir() if p.is_file())
    except PermissionError:
        return CheckResult(FAIL, f"{keys}: not readable by this user (run as doorpi)")
    if mode & 0o077:
        return CheckResult(FAIL, f"{keys}: mode {mode:04o}, want 0700")
    names = {p.name for p in files}
    missing = [name for name in GATE_KEY_FILES if name not in names]
    if missing:
        return CheckResult(FAIL, f"{keys}: no {', '.join(missing)} (run: doorpi keys init)")
    for key in files:
        if key.suffix == ".pub":
            continue
        key_mode = _mode(key)
        if key_mode & 0o077:
            return CheckResult(FAIL, f"{key}: mode {key_mode:04o}, want 0600")
    return CheckResult(PASS, f"{len(files)} key file(s) in {keys}, private ones 0600")


def check_database(data_dir: Path) -> CheckResult:
    """SQLite ``PRAGMA integrity_check`` on the database, opened read-only."""
    db = data_dir / DB_NAME
    if not db.exists():
        if (data_dir / KEYS_DIR / "database.created").exists():
            return CheckResult(FAIL, f"{db}: missing, but this gate had one (docs/recovery.md)")
        return CheckResult(WARN, f"{db}: not created yet (the gate creates it on first run)")
    db_mode = _mode(db)
    if db_mode & 0o077:
        return CheckResult(FAIL, f"{db}: mode {db_mode:04o}, want 0600")
    how = ""
    try:
        rows = _integrity(db, "mode=ro")
    except sqlite3.Error as exc:
        # mode=ro needs the WAL's shared-memory file, there only while the gate has the
        # database open. doorpi-selftest.service sees the folder read-only
        # (ReadOnlyPaths=), so with the gate not running (at boot) it cannot make one:
        # then the file is read as it is on disk (immutable=1, as the store reads a
        # read-only partition: doorpi.store.db.open_readonly). No gate holds it open, so
        # nothing writes it meanwhile; changes left in a -wal are not seen.
        if read_only_layer(data_dir) != "mount":
            from doorpi.store.faults import partition_problem

            cause = partition_problem(data_dir)  # SQLite alone: "unable to open database file"
            return CheckResult(FAIL, f"{db}: {cause or exc}")
        try:
            rows = _integrity(db, "immutable=1")
        except sqlite3.Error as exc2:
            return CheckResult(FAIL, f"{db}: {exc2}")
        how = " (read as on disk: the gate was not running)"
    messages = [str(row[0]) for row in rows]
    if messages != ["ok"]:
        return CheckResult(FAIL, f"{db}: integrity_check: {'; '.join(messages[:3])}{how}")
    return CheckResult(PASS, f"{db}: integrity ok{how}")


def _integrity(db: Path, flags: str) -> list[Any]:
    """``PRAGMA integrity_check`` rows of ``db`` opened with URI ``flags``; raises sqlite3.Error."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?{flags}", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


SUMS = "SHA256SUMS"
MANIFEST = "manifest.toml"


def _expected_hashes(
    models_dir: Path, shipped: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """File name -> sha256: the package's hashes (``shipped``), compared with the
    SHA256SUMS and manifest.toml found beside the files.

    ``shipped`` is the package's copy of the build's SHA256SUMS
    (doorpi.vision.models.shipped_hashes): what the gate's model loader checks
    against. A SHA256SUMS (``sha256  name`` lines) or a models/manifest.toml
    ``[outputs."name"] sha256`` beside the files is only compared, and a
    disagreement with the package or between them is itself a failure. A converted
    model whose bytes vary with the build machine (an output with
    ``known_answers`` and no ``sha256``) must be among the package's hashes, and
    meets its known answers in `check_face_runtime`.
    Returns the hashes and a list of problems.
    """
    hashes: dict[str, str] = dict(shipped)
    problems: list[str] = []
    sums = models_dir / SUMS
    if sums.is_file():
        for line in sums.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            digest, _, name = line.strip().partition(" ")
            name = name.strip().lstrip("*")
            if hashes.setdefault(name, digest.lower()) != digest.lower():
                problems.append(f"{name}: {sums} and the package's model hashes disagree")
    manifest = models_dir / MANIFEST
    if manifest.is_file():
        try:
            outputs = tomllib.loads(manifest.read_text(encoding="utf-8")).get("outputs", {})
        except tomllib.TOMLDecodeError as exc:
            return hashes, [f"{manifest}: invalid TOML: {exc}"]
        for name, entry in outputs.items():
            if isinstance(entry, Mapping) and "known_answers" in entry and "sha256" not in entry:
                if name not in shipped:
                    problems.append(f"{name}: not in the package's model hashes (not pinned)")
                continue
            digest = str(entry.get("sha256", "")).lower() if isinstance(entry, Mapping) else ""
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                problems.append(f"{manifest}: {name} has no pinned sha256 ({digest or 'none'})")
            elif hashes.setdefault(name, digest) != digest:
                problems.append(f"{name}: {MANIFEST} and the package's model hashes disagree")
    return hashes, problems


def check_models(
    models_dir: Path, face_enabled: bool, package_sums: Path | None = None
) -> CheckResult:
    """Every model is present with the sha256 the installed package shipped with.

    The hashes come from the package (doorpi/data/models.SHA256SUMS, the build
    shipped with the image: doorpi.vision.models.shipped_hashes), the same the
    gate's model loader uses; lists beside the files are only compared. A
    corrupted or swapped model would change who the camera recognises. Face
    disabled: nothing to check (WARN, not FAIL).
    """
    if not face_enabled:
        return CheckResult(WARN, "face disabled: models not checked")
    if not models_dir.is_dir():
        return CheckResult(FAIL, f"{models_dir}: missing (face is enabled)")
    from doorpi.vision.models import shipped_hashes
    from doorpi.vision.runtime import ModelError

    try:
        shipped = shipped_hashes(package_sums)
    except ModelError as exc:
        return CheckResult(FAIL, str(exc))
    hashes, problems = _expected_hashes(models_dir, shipped)
    if problems:
        return CheckResult(FAIL, problems[0])
    for name, digest in sorted(hashes.items()):
        path = models_dir / name
        if not path.is_file():
            return CheckResult(FAIL, f"{path}: missing")
        actual = sha256_file(path)
        if actual != digest:
            return CheckResult(FAIL, f"{path}: sha256 {actual[:12]}..., expected {digest[:12]}...")
    return CheckResult(PASS, f"{len(hashes)} model(s) in {models_dir}, hashes match the package's")


def check_face_runtime(models_dir: Path, face_enabled: bool) -> CheckResult:
    """SFace reproduces its known answers on this CPU and TFLite runtime.

    A runtime that miscomputes (seen under qemu with SVE/SME: every face alike)
    would let strangers match, and no hash can see it (doorpi.vision.kat).
    """
    if not face_enabled:
        return CheckResult(WARN, "face disabled: runtime not checked")
    try:
        from doorpi.vision.kat import check
        from doorpi.vision.models import EMBEDDER
        from doorpi.vision.runtime import ModelError, TFLiteModel
    except ImportError as exc:
        return CheckResult(FAIL, f"face runtime not installed: {exc}")
    try:
        check(TFLiteModel(models_dir / EMBEDDER, 1), models_dir)
    except ModelError as exc:
        return CheckResult(FAIL, str(exc))
    return CheckResult(PASS, "SFace reproduces its known answers on this CPU and runtime")


def check_strike_boot(pin: int, active_high: bool, strike: str) -> CheckResult:
    """Is the strike driver energised between power-on and the gate taking the line?

    The SoC's reset pulls (BCM2835/2711: GPIO0-8 pulled up, GPIO9-27 pulled down) set the
    strike pin's level while the Pi boots, the gate restarts or the header is unplugged.
    With an active-low relay board on a pulled-down pin (or active-high on a pulled-up
    one) a fail-secure strike opens during every boot: the complaint users have most
    often about DIY door controllers.
    """
    if not 0 <= pin <= 27:
        return CheckResult(FAIL, f"gpio.strike = {pin}: not a header GPIO (0-27)")
    from doorpi.pinsafety import strike_pin_problem

    if strike_pin_problem(pin):
        return CheckResult(FAIL, f"gpio.strike = {pin}: {strike_pin_problem(pin)}")
    boot_high = pin <= 8
    energised = boot_high == active_high
    level = "high" if boot_high else "low"
    polarity = "active-high" if active_high else "active-low"
    where = f"GPIO{pin} is pulled {level} at power-on; with an {polarity} driver"
    if energised and strike == "fail-secure":
        return CheckResult(FAIL, f"{where} the fail-secure strike OPENS during boot")
    if not energised and strike == "fail-safe":
        return CheckResult(
            WARN, f"{where} the fail-safe strike is released during boot (by design)"
        )
    state = "energised (locked)" if energised else "de-energised (locked)"
    return CheckResult(PASS, f"{where} the {strike} strike stays {state} during boot")


def check_camera(dev_dir: Path, face_enabled: bool) -> CheckResult:
    """A camera device node exists (V4L2 /dev/video* or libcamera's /dev/media*)."""
    nodes = sorted(glob.glob(str(dev_dir / "video*")) + glob.glob(str(dev_dir / "media*")))
    if nodes:
        return CheckResult(PASS, f"camera nodes: {', '.join(Path(n).name for n in nodes[:4])}")
    if face_enabled:
        return CheckResult(FAIL, f"no camera in {dev_dir} (face is enabled): check the CSI cable")
    return CheckResult(WARN, f"no camera in {dev_dir} (face disabled, not needed)")


def check_camera_orientation(
    camera: Mapping[str, Any],
    face_enabled: bool,
    models_dir: Path,
    frame: Any = None,
) -> CheckResult:
    """The ``[camera]`` turn and flips, and, given a picture from this camera with a
    face in it (``doorpi selftest --camera-frame FILE``), whether they make it upright.

    How: the picture is turned as configured, then BlazeFace runs on it turned
    0, 90, 180 and 270 degrees; the turn with the most confident face is the
    one the camera needs (upright faces beat every other turn on all 255
    photos of ../shared/faces, doorpi.vision.detect.FaceDetector.upside_down).
    A mirror image cannot be told from a face, so flips are reported, not checked.
    """
    try:
        from doorpi.vision.orient import Orientation

        orient = Orientation(
            int(camera.get("rotation", 0)),
            bool(camera.get("hflip", False)),
            bool(camera.get("vflip", False)),
        )
    except (TypeError, ValueError) as exc:
        return CheckResult(FAIL, f"[camera]: {exc}")
    said = f"camera {orient.describe()}"
    if frame is None:
        how = "" if face_enabled else " (face disabled)"
        return CheckResult(
            PASS, f"{said}{how}; to check it, run with --camera-frame and a picture of a face"
        )
    try:
        import numpy as np

        from doorpi.vision.detect import FaceDetector
        from doorpi.vision.models import load_models

        detector = FaceDetector(load_models(models_dir, 1).detector)
        upright = orient.apply(np.asarray(frame))
        best = []
        for turn in (0, 90, 180, 270):
            _, _, logit = detector.detect_input(
                np.ascontiguousarray(np.rot90(upright, -turn // 90))
            )
            best.append((logit, turn))
    except Exception as exc:  # no models, no runtime: say so in one line
        return CheckResult(FAIL, f"{said}: cannot check ({type(exc).__name__}: {exc})")
    logit, turn = max(best)
    if logit < 0.0:  # no anchor above 0.5 in any turn
        return CheckResult(WARN, f"{said}: no face in the picture, orientation not checked")
    if turn:
        need = (orient.rotation + turn) % 360
        return CheckResult(
            FAIL,
            f"{said}: faces in the picture are turned; set [camera] rotation = {need}",
        )
    return CheckResult(PASS, f"{said}: faces in the picture are upright (flips not checkable)")


def check_camera_channels(face_enabled: bool, models_dir: Path, frame: Any = None) -> CheckResult:
    """Red and blue where doorpi expects them, judged from the face in a picture
    from this camera (``--camera-frame``; ``camera`` captures one through doorpi's
    own adapter, the path whose channel order counts).

    How: the face pipeline finds and aligns the face; skin under white light is
    redder than blue ((R - B) / mean >= 0.075 on all 255 photos of
    ../shared/faces; 253 of 254 swapped copies were bluer), ``doorpi.vision.camcheck``.
    A gray picture (IR light) or strongly coloured light cannot tell; the running
    gate keeps checking (the ``camera format`` device fault in ``doorpi status``).
    """
    if frame is None:
        how = "" if face_enabled else " (face disabled)"
        return CheckResult(PASS, f"not checked{how}; run with --camera-frame camera")
    try:
        import numpy as np

        from doorpi.vision.models import load_models
        from doorpi.vision.pipeline import FacePipeline

        res = FacePipeline(load_models(models_dir, 1)).embed_any(np.asarray(frame))
    except Exception as exc:  # no models, no runtime: say so in one line
        return CheckResult(FAIL, f"cannot check ({type(exc).__name__}: {exc})")
    if res.quality is None:
        return CheckResult(WARN, "no face in the picture, channel order not checked")
    red_blue = float(res.quality.metrics["red_blue"])
    from doorpi.vision.camcheck import ChannelOrderCheck

    band = ChannelOrderCheck().gray_band
    if red_blue <= -band:
        return CheckResult(
            FAIL,
            f"the face is bluer than red ((R - B) / mean {red_blue:+.2f}): red and blue look "
            "swapped; check the camera format (white light assumed)",
        )
    if red_blue < band:
        return CheckResult(WARN, "gray picture (IR light?): channel order not checkable")
    return CheckResult(PASS, f"red and blue in order ((R - B) / mean {red_blue:+.2f})")


def capture_camera_frame() -> Any:
    """One RGB frame through doorpi's own camera adapter (picamera2, a Pi only).

    Raises OSError (one line) when there is no camera or no picamera2 here."""
    try:
        from doorpi.hardware.camera import Picamera2Source

        cam = Picamera2Source()
    except Exception as exc:  # ImportError off a Pi, RuntimeError with no camera
        raise OSError(f"--camera-frame camera: cannot open the camera: {exc}") from None
    try:
        cam.start()
        return cam.capture().rgb
    except Exception as exc:
        raise OSError(f"--camera-frame camera: cannot capture: {exc}") from None
    finally:
        cam.close()


def _pyscard_readers() -> list[str]:
    from smartcard.System import readers  # pyscard; only on installs with a reader

    return [str(r) for r in readers()]


def check_reader(
    enabled: bool, name: str, list_readers: Callable[[], Sequence[str]] = _pyscard_readers
) -> CheckResult:
    """pcscd answers and a reader (matching the configured name, if any) is attached."""
    if not enabled:
        return CheckResult(WARN, "card reader disabled in the configuration")
    try:
        found = list(list_readers())
    except ImportError as exc:
        return CheckResult(FAIL, f"pyscard not installed: {exc}")
    except Exception as exc:  # EstablishContextException etc.: pcscd down or denied
        reason = str(exc).strip() or type(exc).__name__
        return CheckResult(FAIL, f"PC/SC error ({type(exc).__name__}): {reason}; is pcscd running?")
    if not found:
        return CheckResult(FAIL, "pcscd sees no reader: plug in the NFC reader (libccid)")
    from doorpi.hardware.reader import reader_matches

    matching = [r for r in found if reader_matches(name, r)]
    if not matching:
        return CheckResult(FAIL, f"no reader matches {name!r}; found: {', '.join(found)}")
    return CheckResult(PASS, f"reader: {matching[0]}")


def check_gpio(dev_dir: Path) -> CheckResult:
    """A GPIO character device exists (the strike, inputs and matrix keypad need it)."""
    chips = sorted(glob.glob(str(dev_dir / "gpiochip*")))
    if not chips:
        return CheckResult(FAIL, f"no {dev_dir}/gpiochip*: not a Raspberry Pi or no GPIO driver")
    unusable = [c for c in chips if not os.access(c, os.R_OK | os.W_OK)]
    if len(unusable) == len(chips):
        return CheckResult(FAIL, f"{chips[0]}: no read/write access (user not in group gpio?)")
    return CheckResult(PASS, f"GPIO: {', '.join(Path(c).name for c in chips)}")


def check_keypad(kind: str, device: str) -> CheckResult:
    """A USB keypad's event device exists; matrix keypads are covered by the GPIO check."""
    if kind != "usb":
        return CheckResult(PASS, f"keypad kind {kind!r}: nothing to open")
    if not device:
        return CheckResult(FAIL, "keypad kind 'usb' but [keypad] device is empty")
    if not Path(device).exists():
        return CheckResult(FAIL, f"{device}: missing (keypad unplugged?)")
    if not os.access(device, os.R_OK):
        return CheckResult(FAIL, f"{device}: not readable (user not in group input?)")
    return CheckResult(PASS, f"USB keypad: {device}")


CHECK_NAMES = (
    "config",
    "strike_boot",
    "data_dir",
    "keys",
    "database",
    "models",
    "face_runtime",
    "camera",
    "camera_orientation",
    "camera_channels",
    "reader",
    "gpio",
    "keypad",
)


def run_checks(
    config_path: Path,
    *,
    skip: Iterable[str] = (),
    models_dir: Path | None = None,
    dev_dir: Path = Path("/dev"),
    list_readers: Callable[[], Sequence[str]] = _pyscard_readers,
    camera_frame: Any = None,
) -> list[NamedResult]:
    """Run every check not in ``skip``, in a fixed order, and return the results.

    ``camera_frame``: an RGB array taken by this camera, for ``camera_orientation``."""
    skipped = set(skip)
    unknown = skipped - set(CHECK_NAMES)
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(sorted(unknown))}")
    config_result, settings = check_config(config_path)
    site = settings.get("site", {})
    face = settings.get("face", {})
    reader = settings.get("reader", {})
    keypad = settings.get("keypad", {})
    gpio = settings.get("gpio", {})
    door = settings.get("door", {})
    data_dir = Path(site.get("data_dir", "/var/lib/doorpi"))
    face_enabled = bool(face.get("enabled", False))
    if models_dir is None:
        models_dir = Path(os.environ.get("DOORPI_MODELS_DIR", DEFAULT_MODELS_DIR))

    checks: dict[str, Callable[[], CheckResult]] = {
        "config": lambda: config_result,
        "strike_boot": lambda: check_strike_boot(
            int(gpio.get("strike", 17)),
            bool(gpio.get("strike_active_high", True)),
            str(door.get("strike", "fail-secure")),
        ),
        "data_dir": lambda: check_data_dir(data_dir),
        "keys": lambda: check_keys(data_dir),
        "database": lambda: check_database(data_dir),
        "models": lambda: check_models(models_dir, face_enabled),
        "face_runtime": lambda: check_face_runtime(models_dir, face_enabled),
        "camera": lambda: check_camera(dev_dir, face_enabled),
        "camera_orientation": lambda: check_camera_orientation(
            settings.get("camera", {}), face_enabled, models_dir, camera_frame
        ),
        "camera_channels": lambda: check_camera_channels(face_enabled, models_dir, camera_frame),
        "reader": lambda: check_reader(
            bool(reader.get("enabled", True)), str(reader.get("name", "")), list_readers
        ),
        "gpio": lambda: check_gpio(dev_dir),
        "keypad": lambda: check_keypad(
            str(keypad.get("kind", "none")), str(keypad.get("device", ""))
        ),
    }
    results = []
    for name in CHECK_NAMES:
        if name in skipped:
            continue
        try:
            result = checks[name]()
        except Exception as exc:  # a crashing check is a failed check, not a crashed tool
            result = CheckResult(FAIL, f"check crashed: {type(exc).__name__}: {exc}")
        results.append(NamedResult(name, result.status, result.detail))
    return results


def exit_code(results: Iterable[NamedResult]) -> int:
    """0 when nothing FAILed, 1 otherwise."""
    return 1 if any(r.status == FAIL for r in results) else 0


def format_text(results: Sequence[NamedResult]) -> str:
    """One aligned line per check, then a summary line."""
    width = max((len(r.name) for r in results), default=0)
    lines = [f"{r.status}  {r.name:<{width}}  {r.detail}" for r in results]
    counts = {s: sum(r.status == s for r in results) for s in (PASS, WARN, FAIL)}
    lines.append(f"{counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed")
    return "\n".join(lines)


def format_json(results: Sequence[NamedResult]) -> str:
    """Machine-readable results (for the USB sync report and scripts)."""
    return json.dumps(
        {"ok": exit_code(results) == 0, "checks": [asdict(r) for r in results]}, indent=2
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``doorpi selftest`` and ``python -m doorpi.selftest``."""
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--skip",
        default="",
        metavar="NAMES",
        help=f"comma-separated checks to leave out ({', '.join(CHECK_NAMES)})",
    )
    parser.add_argument(
        "--camera-frame",
        default="",
        metavar="FILE",
        help="a picture taken by this camera with a face in it, or 'camera' to capture "
        "one now: check [camera] rotation and channel order",
    )


def run_from_args(config: str, json_output: bool, skip: str, camera_frame: str = "") -> int:
    """Run the checks, print them, and return the exit code."""
    names = [s.strip() for s in skip.split(",") if s.strip()]
    try:
        frame = None
        if camera_frame == "camera":
            frame = capture_camera_frame()
        elif camera_frame:
            from doorpi.hardware.camera import load_rgb

            frame = load_rgb(camera_frame, max_side=1280)
        results = run_checks(Path(config), skip=names, camera_frame=frame)
    except (ValueError, OSError) as exc:
        print(f"doorpi selftest: {exc}", file=sys.stderr)
        return 2
    print(format_json(results) if json_output else format_text(results))
    return exit_code(results)


def main(argv: list[str] | None = None) -> int:
    """``python -m doorpi.selftest``: the same checks without the full CLI."""
    parser = argparse.ArgumentParser(prog="python -m doorpi.selftest", description=__doc__)
    parser.add_argument(
        "--config", default=os.environ.get("DOORPI_CONFIG", DEFAULT_CONFIG), help="config file"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args.config, args.json, args.skip, args.camera_frame)


if __name__ == "__main__":
    sys.exit(main())
