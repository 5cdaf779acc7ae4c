"""Where each setting comes from, and the one validator every source passes.

A gate's effective configuration is three TOML layers, later over earlier, key
by key:

1. ``package``: the file given with ``--config`` (on the Pi
   ``/etc/doorpi/doorpi.toml`` on the read-only root: the shipped defaults and
   the data directory);
2. ``installer``: ``<data_dir>/config/installer.toml``, taken once from the FAT
   boot partition (``/boot/firmware/doorpi.toml``) by ``doorpi config
   import-boot`` (doorpi-settings.service, before the gate starts);
3. ``admin``: ``<data_dir>/config/admin.toml``, written by ``doorpi sync
   import`` from the settings the admin edited on the laptop (``doorpi admin
   gate settings``), carried signed and sealed in that gate's bundle.

Each key belongs to one source (`owner`). The boot partition is readable and
writable by anyone holding the SD card, so it carries only what is physical
(wiring, strike type, reader, keypad, the gate's name); who may enter, when,
face and the data controller need the site's signature and come only from the
admin. Whatever the source, the candidate layer is merged with the others and
run through `doorpi.config.parse_config`, the validator the gate starts with,
on the gate and on the laptop alike.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from doorpi.config import Config, ConfigError, parse_config, read_toml
from doorpi.fsutil import write_atomic

PACKAGE, INSTALLER, ADMIN = "package", "installer", "admin"
LAYER_DIR = "config"
LAYER_FILES = {INSTALLER: "installer.toml", ADMIN: "admin.toml"}
INTAKE_FILE = "intake.json"
BOOT_FILE = Path("/boot/firmware/doorpi.toml")
APPLIED_NOTE = "doorpi.toml.applied.txt"
REJECTED_NOTE = "doorpi.toml.rejected.txt"
MAX_SETTINGS_BYTES = 64 * 1024

# The shipped data/doorpi.toml's site.controller and site.contact, and the
# marks of any other example value: face and its notices are refused while
# either remains (residents must never consent to a fictitious controller).
SHIPPED_PLACEHOLDERS = {
    "controller": "Example Court Property Management Ltd.",
    "contact": "office@example.org, +86 10 0000 0000",
}
_PLACEHOLDER_MARKS = ("example court", "example.org", "example.com", "example.net", "0000 0000")

# Keys the installer's boot-partition file may set; everything else in these
# sections, and every other section, is the admin's (except the image's own).
_INSTALLER_SECTIONS = frozenset({"gpio", "reader", "pin", "camera"})
_INSTALLER_KEYS = {
    "door": frozenset({"name", "strike", "unlock_seconds", "held_open_seconds",
                       "exit_button_unlocks", "relock_on_open"}),
    "keypad": frozenset({"kind", "rows", "cols", "layout", "device", "entry_timeout_seconds"}),
    "face": frozenset({"num_threads", "models_dir"}),
}  # fmt: skip
_IMAGE_ONLY = frozenset({("site", "data_dir")})
# Security policy inside an installer section: whether UID-only (cloneable) cards
# are accepted, and until when, is the admin's decision (doorpi.cards.policy).
_ADMIN_KEYS = frozenset({("reader", "legacy_uid"), ("reader", "legacy_uid_until")})
_KNOWN_SECTIONS = frozenset({"site", "door", "gpio", "reader", "keypad", "lockout", "pin",
                             "audit", "schedules", "face", "modes", "camera"})  # fmt: skip


def owner(section: str, key: str) -> str | None:
    """Which source may set ``section.key``: INSTALLER, ADMIN, or None (the image only).

    Installer: the wiring and the door hardware (``gpio``, ``reader``,
    ``keypad`` wiring, ``door.strike`` and timings, ``door.name``, the PIN
    hash cost and face thread count, which depend on the Pi model). Admin:
    the site (every ``site`` key but ``data_dir``, so keys added later such as
    ``site.timezone`` travel too), access rules, schedules, PIN lengths,
    lockout, audit retention and face, and whether UID-only cards are accepted
    (``reader.legacy_uid`` and its changeover end ``reader.legacy_uid_until``).
    """
    if (section, key) in _IMAGE_ONLY:
        return None
    if (section, key) in _ADMIN_KEYS:
        return ADMIN
    if section in _INSTALLER_SECTIONS or key in _INSTALLER_KEYS.get(section, ()):
        return INSTALLER
    return ADMIN


def is_placeholder(value: str) -> bool:
    """True for the shipped example controller/contact, or an obvious example value."""
    text = value.strip().lower()
    return text in {v.lower() for v in SHIPPED_PLACEHOLDERS.values()} or any(
        mark in text for mark in _PLACEHOLDER_MARKS
    )


def placeholder_problem(cfg: Config) -> str | None:
    """Why face (and its notices) may not be used with this site, or None: one line."""
    for key in ("controller", "contact"):
        value = str(getattr(cfg.site, key))
        if is_placeholder(value):
            return (
                f"site.{key}: {value!r} is the shipped placeholder; face and its notices need "
                "the real data controller and contact (set them with `doorpi admin gate settings`)"
            )
    return None


def merge(*docs: dict[str, Any]) -> dict[str, Any]:
    """Later documents over earlier ones, key by key inside each table."""
    out: dict[str, Any] = {}
    for doc in docs:
        for section, table in doc.items():
            if isinstance(table, dict) and isinstance(out.get(section), dict):
                out[section] = {**out[section], **table}
            else:
                out[section] = dict(table) if isinstance(table, dict) else table
    return out


def misplaced(doc: dict[str, Any], source: str) -> str | None:
    """The first key of ``doc`` that ``source`` may not set, as one line, or None."""
    for section, table in doc.items():
        if section not in _KNOWN_SECTIONS or not isinstance(table, dict):
            continue  # parse_config names unknown sections and bad shapes
        for key in table:
            right = owner(section, key)
            if right == source:
                continue
            if right is None:
                return (
                    f"{section}.{key}: fixed by the image (/etc/doorpi/doorpi.toml), not settable"
                )
            if right == ADMIN:
                return (
                    f"{section}.{key}: the admin's setting (travels signed in the bundle: "
                    "`doorpi admin gate settings`), not the installer's boot file"
                )
            return (
                f"{section}.{key}: the installer's setting (hardware: {BOOT_FILE.name} on the "
                "boot partition), not the admin's"
            )
    return None


@dataclass(frozen=True)
class Layers:
    """The package file and the installer's and admin's layers in its data directory."""

    package_path: Path
    package: dict[str, Any]
    dir: Path
    installer: dict[str, Any] = field(default_factory=dict)
    admin: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls, package_path: Path, package: dict[str, Any] | None = None, base: Config | None = None
    ) -> Layers:
        """Read the layers beside ``package_path``'s data directory; ConfigError naming the file."""
        doc = read_toml(package_path) if package is None else package
        if base is None:
            try:
                base = parse_config(doc, package_path)
            except ConfigError as exc:
                raise ConfigError(f"{package_path}: {exc}") from None
        folder = base.site.data_dir / LAYER_DIR
        docs = {name: _read_layer(folder / f) for name, f in LAYER_FILES.items()}
        return cls(package_path, doc, folder, docs[INSTALLER], docs[ADMIN])

    def path(self, source: str) -> Path:
        return self.dir / LAYER_FILES[source]

    def merged(self) -> dict[str, Any]:
        return merge(self.package, self.installer, self.admin)

    def sources(self) -> dict[str, str]:
        """``"section.key"`` -> where the effective value comes from (absent: built-in default)."""
        out: dict[str, str] = {}
        for label, doc in ((PACKAGE, self.package), (INSTALLER, self.installer),
                           (ADMIN, self.admin)):  # fmt: skip
            where = str(self.package_path if label == PACKAGE else self.path(label))
            for section, table in doc.items():
                if isinstance(table, dict):
                    for key in table:
                        out[f"{section}.{key}"] = f"{label} ({where})"
        return out

    def config(self, where: str | None = None) -> Config:
        """The effective configuration; a bad layer is one ConfigError naming its file
        (or ``where``)."""
        for label, doc in ((INSTALLER, merge(self.package, self.installer)),
                           (ADMIN, self.merged())):  # fmt: skip
            try:
                cfg = parse_config(doc, self.package_path)
            except ConfigError as exc:
                raise ConfigError(f"{where or self.path(label)}: {exc}") from None
        return replace(cfg, sources=self.sources())

    def candidate(self, source: str, doc: dict[str, Any], where: str) -> Config:
        """The config the gate would run with if ``doc`` replaced the ``source`` layer.

        The one check for the installer's file, the admin's settings on the
        laptop and in a bundle: the whole merge through `parse_config`, the
        key's owner, and no face while a placeholder controller remains.
        Raises ConfigError as one line starting with ``where``.
        """
        problem = misplaced(doc, source)
        try:
            cfg = replace(self, **{source: doc}).config(where)
        except ConfigError:
            # A key from the wrong source is the likelier cause (GPIO clashes, ...),
            # unless the parser does not know the key at all (a typo).
            if problem and "unknown" not in str(sys.exc_info()[1]):
                raise ConfigError(f"{where}: {problem}") from None
            raise
        if problem is None and cfg.face.enabled:
            problem = placeholder_problem(cfg)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        return cfg


def _read_layer(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    return read_toml(path)


def apply_layers(package_path: Path, package: dict[str, Any], base: Config) -> Config:
    """`doorpi.config.load_config`'s last step: the effective config with its sources."""
    layers = Layers.load(package_path, package, base)
    if not layers.installer and not layers.admin:
        return replace(base, sources=layers.sources())
    return layers.config()


def gate_name(cfg: Config, fingerprint: str) -> str:
    """The gate's name for pairing: ``door.name`` where a file sets it, else one derived
    from its key (``gate-1a2b3c``), so two gates flashed from one image never share one."""
    if "door.name" in cfg.sources:
        return cfg.door.name
    return f"gate-{fingerprint[:6]}"


# ------------------------------------------------------------------ the installer's file


@dataclass(frozen=True)
class Intake:
    """What `import_boot_file` did: result is "applied", "rejected" or "none"."""

    result: str
    reason: str = ""
    at: float = 0.0
    file: str = ""


def import_boot_file(package_path: Path, boot_file: Path = BOOT_FILE,
                     now: float | None = None) -> Intake:  # fmt: skip
    """Take the installer's settings from the boot partition, once.

    Valid: written to ``<data_dir>/config/installer.toml`` (owned like the data
    directory), the boot copy removed and ``doorpi.toml.applied.txt`` left
    beside it. Invalid: the gate keeps its previous settings, the file becomes
    ``doorpi.toml.rejected.txt`` with the reason on its first line (a laptop
    with an SD card reader is the installer's only window). The file holds
    wiring and names, nothing secret. The outcome is kept in
    ``<data_dir>/config/intake.json`` for `doorpi status`.
    """
    now = time.time() if now is None else now
    layers = Layers.load(package_path)
    if not boot_file.exists():
        return Intake("none")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    try:
        raw = boot_file.read_bytes()
        if len(raw) > MAX_SETTINGS_BYTES:
            raise ConfigError(f"{boot_file}: over {MAX_SETTINGS_BYTES // 1024} KiB")
        try:
            text = raw.decode("utf-8-sig")
            doc = tomllib.loads(text)
        except UnicodeDecodeError:
            raise ConfigError(f"{boot_file}: not UTF-8 text (save it as UTF-8)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{boot_file}: not valid TOML: {exc}") from None
        layers.candidate(INSTALLER, doc, str(boot_file))
    except ConfigError as exc:
        note = (
            f"# REJECTED by doorpi at {stamp}: {exc}\n"
            "# The gate runs with its previous settings. Fix the line above, save this file\n"
            f"# as {boot_file.name} on this partition and start the gate again.\n\n"
        ).encode() + raw
        write_atomic(boot_file.with_name(REJECTED_NOTE), note, 0o644)
        boot_file.unlink()
        boot_file.with_name(APPLIED_NOTE).unlink(missing_ok=True)
        return _record(layers, Intake("rejected", str(exc), now, str(boot_file)))
    target = layers.path(INSTALLER)
    write_atomic(target, text.encode(), 0o600)  # without a BOM (Notepad's): plain UTF-8
    _own_like(target, layers.dir.parent)
    boot_file.unlink()
    boot_file.with_name(REJECTED_NOTE).unlink(missing_ok=True)
    write_atomic(
        boot_file.with_name(APPLIED_NOTE),
        (
            f"doorpi took {boot_file.name} at {stamp}: the gate runs with it (kept in {target}).\n"
            f"To change the installer's settings, put a new {boot_file.name} here and restart.\n"
            "Site, door rules and face are set by the admin, signed, in the bundle.\n"
        ).encode(),
        0o644,
    )
    return _record(layers, Intake("applied", "", now, str(boot_file)))


def _own_like(path: Path, ref: Path) -> None:
    """Give ``path`` (and its folder) the owner of ``ref``: the intake runs as root,
    the gate as user doorpi."""
    st = ref.stat()
    for p in (path.parent, path):
        if os.geteuid() == 0 and (p.stat().st_uid, p.stat().st_gid) != (st.st_uid, st.st_gid):
            os.chown(p, st.st_uid, st.st_gid)


def _record(layers: Layers, intake: Intake) -> Intake:
    path = layers.dir / INTAKE_FILE
    write_atomic(path, json.dumps(vars(intake)).encode(), 0o600)
    _own_like(path, layers.dir.parent)
    return intake


def last_intake(cfg: Config) -> Intake | None:
    """The last boot-file intake, as recorded, or None."""
    try:
        doc = json.loads((cfg.site.data_dir / LAYER_DIR / INTAKE_FILE).read_text())
        return Intake(**doc)
    except (OSError, ValueError, TypeError):
        return None


# ------------------------------------------------------------------ the admin's settings


def write_admin_layer(layers: Layers, doc: dict[str, Any]) -> bool:
    """Replace the admin's layer (already checked with `Layers.candidate`); False if unchanged."""
    import tomli_w

    if doc == layers.admin:
        return False
    target = layers.path(ADMIN)
    write_atomic(target, tomli_w.dumps(doc).encode(), 0o600)
    return True


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``section.key`` names whose value differs between two layers (added, changed, removed)."""
    flat_old, flat_new = _flat(old), _flat(new)
    return sorted(
        k for k in flat_old.keys() | flat_new.keys() if flat_old.get(k) != flat_new.get(k)
    )


def _flat(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, table in doc.items():
        if isinstance(table, dict):
            out.update({f"{section}.{k}": v for k, v in table.items()})
        else:
            out[section] = table
    return out


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` (value in TOML: ``"text"``, 5, true, ["card"]) -> parts.

    A bare word that is not TOML is taken as a string, so ``door.name=north``
    works without quotes. Raises ConfigError naming the assignment.
    """
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f'{text!r}: give section.key=value, e.g. site.contact="+86 10 ..."')
    value = value.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        if value.startswith("[") and value.endswith("]"):  # a list with bare words in it
            items = [i.strip().strip("'\"") for i in value[1:-1].split(",") if i.strip()]
            meant = "[" + ", ".join(f'"{i}"' for i in items) + "]"
            raise ConfigError(
                f"{text!r}: {value} is not a list TOML reads: quote each item, "
                f"e.g. {name.strip()}={meant}"
            ) from None
        parsed = value
    return section, key.strip(), parsed
