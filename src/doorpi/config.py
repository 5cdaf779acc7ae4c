"""One TOML file -> typed, validated settings. Every error names its key.

`load_config(path)` raises `ConfigError` with a single line such as
``/etc/doorpi/doorpi.toml: door.unlock_seconds: must be a number from 0.5 to
120, got "five"``. Unknown keys are errors too (a typo must not silently fall
back to a default on a door). Defaults live here; the shipped
``data/doorpi.toml`` documents them.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from importlib import resources
from pathlib import Path
from typing import Any

from doorpi.cards.policy import parse_until
from doorpi.core.parity import Devices, door_parity_problem
from doorpi.core.policy import (
    Combination,
    DoorPolicy,
    PolicyError,
    ScheduledRule,
    check_parity,
    parse_rule,
)
from doorpi.core.schedule import Schedule, ScheduleError
from doorpi.modesconfig import ModesConfig, parse_modes
from doorpi.pinsafety import (
    INPUTS,
    OTHER_OUTPUTS,
    output_warnings,
    reserved_pin_problem,
    strike_pin_problem,
)
from doorpi.sitetime import DEFAULT_TIMEZONE, TimeZoneError, zone
from doorpi.validation import InputError, check_text, decode_text_file, safe_text


class ConfigError(ValueError):
    """A configuration mistake, as one line naming the file and the key."""


@dataclass(frozen=True)
class SiteConfig:
    name: str = "doorpi"
    controller: str = ""
    contact: str = ""
    data_dir: Path = Path("/var/lib/doorpi")
    timezone: str = DEFAULT_TIMEZONE  # IANA name; schedules, dates and what people read

    @property
    def tz(self) -> tzinfo:
        return zone(self.timezone)


@dataclass(frozen=True)
class DoorConfig:
    name: str = "door"
    policy: DoorPolicy = field(
        default_factory=lambda: DoorPolicy((frozenset({"card"}), frozenset({"pin"})))
    )
    unlock_seconds: float = 5.0
    held_open_seconds: float = 30.0
    fail_secure: bool = True
    exit_button_unlocks: bool = True
    relock_on_open: bool = True


@dataclass(frozen=True)
class GpioConfig:
    strike: int = 17
    strike_active_high: bool = True
    door_contact: int = 27
    exit_button: int = 22
    tamper: int = 23
    led_green: int = 24
    led_red: int = 25
    buzzer: int = 18
    camera_led: int = 12
    presence: int = 4
    # Settle (debounce) time for the door contact, exit button and tamper switch:
    # a change counts once the line has held it this long. 50 ms covers contact
    # bounce (J. Ganssle, "A Guide to Debouncing": most switches settle within
    # 10 ms, a few take tens of ms) and reed chatter on a swinging door (10-20 ms
    # in field reports) while delaying a real change by only 50 ms.
    settle_seconds: float = 0.05
    # Close confirmation for the door contact: the door counts as closed once the
    # settled contact has stayed closed this long; a shorter closed blip is part of
    # the same opening (no forced-open alarm when it reopens). 1 s (doorpi.core.door
    # CLOSE_CONFIRM_SECONDS says why); 0 = closed on the settled edge. The tamper
    # alarm clears the same way: once the lid has stayed on this long.
    close_confirm_seconds: float = 1.0
    # An exit button held longer than this is reported as stuck (a fault).
    exit_stuck_seconds: float = 60.0
    # Door modes (doorpi.core.modes, hw/pinout.md): 0 = not fitted.
    fire_alarm: int = 0
    fire_alarm_contact: str = "nc"  # "nc": opens on alarm (a cut wire = alarm); "no"
    fire_supervision: int = 0  # second loop, closed while the fire wiring is whole
    lockdown_switch: int = 0  # key switch to GND, closed = lockdown
    duress_output: int = 0  # silent alarm output (duress PIN)


@dataclass(frozen=True)
class ReaderConfig:
    enabled: bool = True
    name: str = ""
    # UID-only cards (cloneable) only if the admin says so, until an ISO date (doorpi.cards.policy).
    legacy_uid: bool = False
    legacy_uid_until: str = ""


@dataclass(frozen=True)
class KeypadConfig:
    kind: str = "matrix"
    rows: tuple[int, ...] = (5, 6, 13, 19)
    cols: tuple[int, ...] = (26, 16, 20, 21)
    layout: str = "4x4"
    device: str = ""
    entry_timeout_seconds: float = 10.0
    pin_min_length: int = 4
    pin_max_length: int = 8


@dataclass(frozen=True)
class LockoutConfig:
    threshold: int = 5
    base_seconds: float = 30.0
    max_seconds: float = 900.0
    window_seconds: float = 900.0
    # After `threshold` unknown cards in `window_seconds`, taps go unchecked this
    # long after each further unknown card (doorpi.core.lockout.CardPacer).
    unknown_card_pause_seconds: float = 5.0


@dataclass(frozen=True)
class PinConfig:
    opslimit: int = 2
    memlimit_kib: int = 19456


@dataclass(frozen=True)
class AuditConfig:
    retention_days: int = 30
    # Consent, enrolment, withdrawal, deletion and admin records: PIPL art. 56 keeps
    # assessment reports and processing records at least three years; never under one.
    governance_retention_days: int = 1095


@dataclass(frozen=True)
class FaceConfig:
    enabled: bool = False
    trigger: str = "on_request"  # on_request | presence | continuous
    window_seconds: float = 8.0
    max_hands_free: int = 100  # above this many templates, face alone (1:N) is refused
    threshold: float = 0.0  # 0 = the threshold shipped with the models
    num_threads: int = 2
    models_dir: str = ""  # "" = $DOORPI_MODELS_DIR, models/build, /opt/doorpi/models
    process: str = "worker"  # worker: models in their own process (doorpi.faceworker) | inline
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CameraConfig:
    """How the camera is mounted: turns and flips that make its picture upright
    (doorpi.vision.orient), applied before any face detection."""

    rotation: int = 0  # degrees clockwise: 0, 90, 180, 270
    hflip: bool = False
    vflip: bool = False


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    site: SiteConfig = SiteConfig()
    door: DoorConfig = DoorConfig()
    gpio: GpioConfig = GpioConfig()
    reader: ReaderConfig = ReaderConfig()
    keypad: KeypadConfig = KeypadConfig()
    lockout: LockoutConfig = LockoutConfig()
    pin: PinConfig = PinConfig()
    audit: AuditConfig = AuditConfig()
    schedules: dict[str, Schedule] = field(default_factory=dict)
    face: FaceConfig = FaceConfig()
    modes: ModesConfig = field(default_factory=ModesConfig)
    camera: CameraConfig = CameraConfig()
    # "section.key" -> the file that set it (doorpi.settings); absent: built-in default
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.site.data_dir / "doorpi.db"

    @property
    def keys_dir(self) -> Path:
        return self.site.data_dir / "keys"

    @property
    def devices(self) -> Devices:
        """The factors the configured hardware can read (doorpi.core.parity)."""
        return Devices(self.reader.enabled, self.keypad.kind != "none", self.face.enabled)

    def rules(self) -> list[tuple[str, tuple[Combination, ...]]]:
        """Every access rule of the door with its config key."""
        scheduled = [(f"door.schedule_access[{i}]", sr.rule)
                     for i, sr in enumerate(self.door.policy.scheduled)]  # fmt: skip
        return [("door.access", self.door.policy.default), *scheduled]


def parity_problems(cfg: Config) -> list[str]:
    """Rules that leave face as the only way in on the devices configured
    (requirement 1); one line each, naming the key."""
    out = []
    for key, rule in cfg.rules():
        problem = door_parity_problem(rule, cfg.devices)
        if problem:
            out.append(f"{key}: {problem}")
    return out


# ------------------------------------------------------------------ reading


class _Section:
    """Typed access to one TOML table, remembering which keys were used."""

    def __init__(self, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{name}: must be a table, got {_show(data)}")
        self.name = name
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def _raw(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def fail(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.name}.{key}: {msg}")

    def str(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        v = self._raw(key, default)
        if not isinstance(v, str):
            raise self.fail(key, f"must be a string, got {_show(v)}")
        if choices and v not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {_show(v)}")
        try:  # no line breaks, bidi or invisible characters in any setting (names, paths)
            check_text(v, 4096)
        except InputError as exc:
            raise self.fail(key, f"{exc}, got {_show(v)}") from None
        return v

    def bool(self, key: str, default: bool) -> bool:
        v = self._raw(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, f"must be true or false, got {_show(v)}")
        return v

    def num(self, key: str, default: float, lo: float, hi: float) -> float:
        v = self._raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise self.fail(key, f"must be a number from {lo:g} to {hi:g}, got {_show(v)}")
        return float(v)

    def int(self, key: str, default: int, lo: int, hi: int) -> int:
        v = self._raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(key, f"must be a whole number from {lo} to {hi}, got {_show(v)}")
        return v

    def pin(self, key: str, default: int, optional: bool = False) -> int:
        v = self._raw(key, default)
        lo = 0 if optional else 2
        # GPIO1 (HAT ID EEPROM, hw/pinout.md) slipped through "0 disables" before.
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 27 or v == 1:
            hint = " (0 disables)" if optional else ""
            raise self.fail(key, f"must be a BCM GPIO number from 2 to 27{hint}, got {_show(v)}")
        return v

    def list(self, key: str, default: list[Any]) -> list[Any]:
        v = self._raw(key, default)
        if not isinstance(v, list):
            raise self.fail(key, f"must be a list, got {_show(v)}")
        return v

    def check_unknown(self) -> None:
        for key in self.data:
            if key not in self.used:
                near = difflib.get_close_matches(key, sorted(self.used), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise ConfigError(f"{self.name}.{key}: unknown key{hint}")


def _show(v: Any) -> str:
    """A value from the file, quoted for a one-line message: control and bidi
    characters escaped (`doorpi.validation.safe_text`), cut at 40 characters."""
    text = f'"{safe_text(v)}"' if isinstance(v, str) else safe_text(repr(v))
    return text if len(text) <= 40 else text[:37] + "..."


def _section(doc: dict[str, Any], name: str) -> _Section:
    return _Section(name, doc.get(name, {}))


def _parse_schedules(doc: dict[str, Any]) -> dict[str, Schedule]:
    raw = doc.get("schedules", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"schedules: must be a table, got {_show(raw)}")
    out: dict[str, Schedule] = {}
    for name, windows in raw.items():
        if not isinstance(windows, list) or not all(isinstance(w, str) for w in windows):
            raise ConfigError(
                f'schedules.{name}: must be a list of windows like "mon-fri 07:00-19:00"'
            )
        try:
            out[name] = Schedule.parse(name, windows)
        except ScheduleError as exc:
            raise ConfigError(f"schedules.{name}: {exc}") from None
    return out


def unknown_schedule(schedules: dict[str, Schedule], name: str | None) -> str | None:
    """None if ``name`` (a resident's schedule; None = any time) is configured, else
    one line saying so and naming the known ones (the CLI, the scenario loader)."""
    if name is None or name in schedules:
        return None
    known = ", ".join(sorted(schedules)) or "none configured"
    return f"unknown schedule {name!r} (known: {known})"


def _rule(sec: _Section, key: str, entries: Any) -> tuple[Combination, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise sec.fail(key, 'must be a list like ["card", "pin", "face+card"]')
    try:
        rule = parse_rule(entries)
        check_parity(rule)
    except PolicyError as exc:
        raise sec.fail(key, str(exc)) from None
    return rule


def _parse_door(doc: dict[str, Any], schedules: dict[str, Schedule]) -> DoorConfig:
    s = _section(doc, "door")
    default = _rule(s, "access", s.list("access", ["card", "pin"]))
    scheduled: list[ScheduledRule] = []
    for i, item in enumerate(s.list("schedule_access", [])):
        key = f"schedule_access[{i}]"
        if not isinstance(item, dict) or set(item) != {"schedule", "access"}:
            raise s.fail(key, 'must be a table with "schedule" and "access"')
        if item["schedule"] not in schedules:
            raise s.fail(key, f"unknown schedule {_show(item['schedule'])}")
        scheduled.append(ScheduledRule(item["schedule"], _rule(s, key, item["access"])))
    strike = s.str("strike", "fail-secure", ("fail-secure", "fail-safe"))
    cfg = DoorConfig(
        name=s.str("name", "door"),
        policy=DoorPolicy(default, tuple(scheduled)),
        unlock_seconds=s.num("unlock_seconds", 5.0, 0.5, 120.0),
        held_open_seconds=s.num("held_open_seconds", 30.0, 1.0, 3600.0),
        fail_secure=strike == "fail-secure",
        exit_button_unlocks=s.bool("exit_button_unlocks", True),
        relock_on_open=s.bool("relock_on_open", True),
    )
    s.check_unknown()
    return cfg


def _parse_gpio(doc: dict[str, Any]) -> GpioConfig:
    s = _section(doc, "gpio")
    d = GpioConfig()
    cfg = GpioConfig(
        strike=s.pin("strike", d.strike),
        strike_active_high=s.bool("strike_active_high", d.strike_active_high),
        door_contact=s.pin("door_contact", d.door_contact, optional=True),
        exit_button=s.pin("exit_button", d.exit_button, optional=True),
        tamper=s.pin("tamper", d.tamper, optional=True),
        led_green=s.pin("led_green", d.led_green, optional=True),
        led_red=s.pin("led_red", d.led_red, optional=True),
        buzzer=s.pin("buzzer", d.buzzer, optional=True),
        camera_led=s.pin("camera_led", d.camera_led, optional=True),
        presence=s.pin("presence", d.presence, optional=True),
        settle_seconds=s.num("settle_seconds", d.settle_seconds, 0, 1),
        close_confirm_seconds=s.num("close_confirm_seconds", d.close_confirm_seconds, 0, 5),
        exit_stuck_seconds=s.num("exit_stuck_seconds", d.exit_stuck_seconds, 5, 3600),
        fire_alarm=s.pin("fire_alarm", 0, optional=True),
        fire_alarm_contact=s.str("fire_alarm_contact", "nc", ("nc", "no")),
        fire_supervision=s.pin("fire_supervision", 0, optional=True),
        lockdown_switch=s.pin("lockdown_switch", 0, optional=True),
        duress_output=s.pin("duress_output", 0, optional=True),
    )
    s.check_unknown()
    problem = strike_pin_problem(cfg.strike)
    if problem:
        raise s.fail("strike", problem)
    for key in INPUTS:
        problem = reserved_pin_problem(getattr(cfg, key))
        if problem:
            raise s.fail(key, problem)
    return cfg


def _parse_keypad(doc: dict[str, Any]) -> KeypadConfig:
    s = _section(doc, "keypad")
    d = KeypadConfig()
    kind = s.str("kind", d.kind, ("matrix", "usb", "none"))
    layout = s.str("layout", d.layout, ("3x4", "4x4"))
    pins: dict[str, tuple[int, ...]] = {}
    for key, want in (("rows", 4), ("cols", 3 if layout == "3x4" else 4)):
        value = s.list(key, list(getattr(d, key)))
        ok = len(value) == want and all(
            isinstance(p, int) and not isinstance(p, bool) and 2 <= p <= 27 for p in value
        )
        if kind == "matrix" and not ok:
            raise s.fail(key, f"must list {want} BCM GPIO numbers for a {layout} keypad")
        for i, pin in enumerate(value if kind == "matrix" else ()):
            problem = reserved_pin_problem(pin)
            if problem:
                raise s.fail(f"{key}[{i}]", problem)
        pins[key] = tuple(value)
    lo = s.int("pin_min_length", d.pin_min_length, 4, 12)
    hi = s.int("pin_max_length", d.pin_max_length, 4, 12)
    if hi < lo:
        raise s.fail("pin_max_length", f"must not be below pin_min_length ({lo})")
    device = s.str("device", d.device)
    if kind == "usb" and not device:
        raise s.fail("device", 'must name the evdev device when kind = "usb"')
    cfg = KeypadConfig(
        kind=kind,
        rows=pins["rows"],
        cols=pins["cols"],
        layout=layout,
        device=device,
        entry_timeout_seconds=s.num("entry_timeout_seconds", d.entry_timeout_seconds, 2, 120),
        pin_min_length=lo,
        pin_max_length=hi,
    )
    s.check_unknown()
    return cfg


def _parse_face(doc: dict[str, Any]) -> FaceConfig:
    s = _section(doc, "face")
    d = FaceConfig()
    trigger = s.str("trigger", d.trigger, ("on_request", "presence", "continuous"))
    allow_continuous = s.bool("allow_continuous", False)
    if trigger == "continuous" and not allow_continuous:
        raise s.fail(
            "trigger",
            '"continuous" scans everyone passing by; set allow_continuous = true to confirm',
        )
    cfg = FaceConfig(
        enabled=s.bool("enabled", d.enabled),
        trigger=trigger,
        window_seconds=s.num("window_seconds", d.window_seconds, 2, 60),
        max_hands_free=s.int("max_hands_free", d.max_hands_free, 0, 100000),
        threshold=s.num("threshold", d.threshold, 0, 1),
        num_threads=s.int("num_threads", d.num_threads, 1, 8),
        models_dir=s.str("models_dir", d.models_dir),
        process=s.str("process", d.process, ("worker", "inline")),
        settings={k: v for k, v in s.data.items() if k not in s.used},
    )
    from doorpi.privacy.settings import PRIVACY_KEYS, privacy_settings

    for key in cfg.settings:
        if key not in PRIVACY_KEYS:
            s.used.update(PRIVACY_KEYS)
            s.check_unknown()
    try:
        privacy_settings(cfg.settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def _check_pin_clash(gpio: GpioConfig, keypad: KeypadConfig) -> None:
    used: dict[int, str] = {}
    named = [(f"gpio.{k}", v) for k, v in vars(gpio).items() if isinstance(v, int)
             and not isinstance(v, bool)]  # fmt: skip
    if keypad.kind == "matrix":
        named += [(f"keypad.rows[{i}]", p) for i, p in enumerate(keypad.rows)]
        named += [(f"keypad.cols[{i}]", p) for i, p in enumerate(keypad.cols)]
    for name, pin in named:
        if pin == 0:
            continue
        if pin in used:
            raise ConfigError(f"{name}: GPIO{pin} is already used by {used[pin]}")
        used[pin] = name


def parse_config(doc: dict[str, Any], path: Path | None = None) -> Config:
    known = {"site", "door", "gpio", "reader", "keypad", "lockout", "pin", "audit",
             "schedules", "face", "modes", "camera"}  # fmt: skip
    for key in doc:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            raise ConfigError(
                f"{key}: unknown section" + (f" (did you mean {near[0]}?)" if near else "")
            )
    schedules = _parse_schedules(doc)

    s = _section(doc, "site")
    site = SiteConfig(
        name=s.str("name", "doorpi"),
        controller=s.str("controller", ""),
        contact=s.str("contact", ""),
        data_dir=Path(s.str("data_dir", "/var/lib/doorpi")),
        timezone=s.str("timezone", DEFAULT_TIMEZONE),
    )
    try:
        zone(site.timezone)
    except TimeZoneError as exc:
        raise s.fail("timezone", str(exc)) from None
    from doorpi.privacy.notices import NoticeError, check_fact

    for key in ("controller", "contact"):  # facts for the notices, never terms (law notes B7)
        if getattr(site, key).strip():
            try:
                check_fact(key, getattr(site, key))
            except NoticeError as exc:
                raise s.fail(key, str(exc).removeprefix(f"{key}: ")) from None
    s.check_unknown()
    if not site.data_dir.is_absolute() and path is not None:
        site = replace(site, data_dir=path.parent / site.data_dir)

    door = _parse_door(doc, schedules)
    gpio = _parse_gpio(doc)

    s = _section(doc, "reader")
    reader = ReaderConfig(
        enabled=s.bool("enabled", True),
        name=s.str("name", ""),
        legacy_uid=s.bool("legacy_uid", False),
        legacy_uid_until=s.str("legacy_uid_until", ""),
    )
    try:
        parse_until(reader.legacy_uid_until)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    s.check_unknown()

    keypad = _parse_keypad(doc)
    _check_pin_clash(gpio, keypad)

    s = _section(doc, "lockout")
    lockout = LockoutConfig(
        threshold=s.int("threshold", 5, 1, 100),
        base_seconds=s.num("base_seconds", 30.0, 1, 86400),
        max_seconds=s.num("max_seconds", 900.0, 1, 86400),
        window_seconds=s.num("window_seconds", 900.0, 10, 86400),
        unknown_card_pause_seconds=s.num("unknown_card_pause_seconds", 5.0, 0, 60),
    )
    s.check_unknown()

    s = _section(doc, "pin")
    pin = PinConfig(
        opslimit=s.int("opslimit", 2, 1, 10),
        memlimit_kib=s.int("memlimit_kib", 19456, 8192, 262144),
    )
    s.check_unknown()

    s = _section(doc, "audit")
    audit = AuditConfig(
        retention_days=s.int("retention_days", 30, 1, 3650),
        governance_retention_days=s.int("governance_retention_days", 1095, 365, 36500),
    )
    s.check_unknown()

    face = _parse_face(doc)
    modes = parse_modes(doc, schedules)

    s = _section(doc, "camera")
    rotation = s.int("rotation", 0, 0, 270)
    if rotation not in (0, 90, 180, 270):
        raise s.fail("rotation", "must be 0, 90, 180 or 270 (degrees clockwise)")
    camera = CameraConfig(rotation, s.bool("hflip", False), s.bool("vflip", False))
    s.check_unknown()

    cfg = Config(path, site, door, gpio, reader, keypad, lockout, pin, audit, schedules, face,
                 modes, camera=camera)  # fmt: skip
    for problem in parity_problems(cfg):  # with the devices actually configured
        raise ConfigError(problem)
    return cfg


def config_warnings(cfg: Config) -> list[str]:
    """Settings that work but an installer should hear about (one line each)."""
    out = output_warnings((f"gpio.{k}", getattr(cfg.gpio, k)) for k in OTHER_OUTPUTS)
    g = cfg.gpio
    if g.fire_alarm and g.fire_alarm_contact == "no" and not g.fire_supervision:
        out.append("gpio.fire_alarm_contact = \"no\" without gpio.fire_supervision: a cut fire "
                   "alarm wire goes unnoticed (use the panel's NC contact; hw/pinout.md)")  # fmt: skip
    return out


def load_config(path: str | Path, layers: bool = True) -> Config:
    """Read and validate a config file; every failure is one ConfigError line.

    With ``layers`` (the default) the result is the gate's effective config:
    the installer's and the admin's layers in the data directory over this
    file (`doorpi.settings`), each value's source in ``Config.sources``.
    """
    p = Path(path)
    doc = read_toml(p)
    try:
        cfg = parse_config(doc, p)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    if not layers:
        return cfg
    from doorpi.settings import apply_layers

    return apply_layers(p, doc, cfg)


def read_toml(p: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing, unreadable, wrongly encoded or malformed
    file is one ConfigError (UTF-8; a Windows byte order mark is fine)."""
    try:
        text = decode_text_file(p.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: no such file (`doorpi config default > {p}` writes the shipped, "
            "commented example there to start from)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except InputError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return doc


def default_config_text() -> str:
    """The shipped, commented example configuration."""
    return resources.files("doorpi").joinpath("data/doorpi.toml").read_text(encoding="utf-8")
