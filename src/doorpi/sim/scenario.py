"""Scripted scenarios: a TOML file of residents, steps and expected events.

Runs headless in virtual time on a `SimulatedSite` and yields one JSON-able
dict per event. The format is documented in docs/scenarios.md; examples live in
``examples/scenarios/``. A scenario's ``expect`` list, when present, is the
full sequence of significant events (feedback clicks and key presses left
out), each entry naming the fields that must match.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from doorpi.clocks import ManualClock
from doorpi.core.modes import RULES, Mode
from doorpi.sim.site import SimulatedSite, scratch_data_dir, sim_config, temp_data_dir

# Events left out of the comparison with `expect` (still printed).
# Door modes that hold the strike released (their relay_on has seconds 0).
HOLDING_MODES = frozenset(m.value for m in Mode if RULES[m].strike_held)
CHATTER = frozenset({"feedback", "key_pressed", "card_removed", "reader_status"})

STEP_KEYS = {"card", "card_fault", "keys", "door", "exit", "tamper", "wait", "clock", "face",
             "face_live", "fire", "fire_wiring", "lockdown", "lockdown_switch", "pin_clear"}  # fmt: skip
# Optional step fields: `frames` (how many frames a face step shows; a single
# photo repeated is what a printed photo held still looks like) and `shift`
# (pixels the photo moves per frame: a photo waved in front of the camera).
STEP_EXTRAS = {"at", "frames", "shift"}
# Top-level keys of a scenario file (docs/scenarios.md): anything else is refused
# in one line, never ignored (a misplaced [schedules] would silently change nothing).
EXTRA_KEYS = {"settle"}  # seconds to run after the last step (default: unlock + 1 s)
TOP_KEYS = {"name", "description", "start", "config", "residents", "steps", "expect", *EXTRA_KEYS}
# What a [[residents]] entry may hold (doorpi.sim.site.SimulatedSite.add_resident).
RESIDENT_KEYS = {"name", "unit", "keypad_id", "valid_from", "valid_until", "schedule", "cards",
                 "pin", "responder", "duress_pin", "active", "face"}  # fmt: skip


class ScenarioError(ValueError):
    """A scenario file that cannot be run; one line naming file and step."""


@dataclass
class Scenario:
    path: Path
    name: str
    description: str
    start: datetime
    config: dict[str, Any]
    residents: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    expect: list[dict[str, Any]] | None = None
    tz_hours: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        p = Path(path)
        from doorpi.validation import InputError, decode_text_file

        try:
            doc = tomllib.loads(decode_text_file(p.read_bytes()))
        except OSError as exc:
            raise ScenarioError(f"{p}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:  # as doorpi.config says it
            raise ScenarioError(f"{p}: not valid TOML: {exc}") from None
        except InputError as exc:
            raise ScenarioError(f"{p}: {exc}") from None
        for key in doc:
            if key not in TOP_KEYS:
                raise ScenarioError(f"{p}: {_misplaced(key, doc[key])}")
        for key, kind in (("config", dict), ("residents", list), ("steps", list)):
            if not isinstance(doc.get(key, kind()), kind):
                raise ScenarioError(f"{p}: {key}: must be a {'table' if kind is dict else 'list'}")
        for key in ("residents", "steps"):
            for i, item in enumerate(doc.get(key, [])):
                if not isinstance(item, dict):
                    raise ScenarioError(f"{p}: {key}[{i}]: must be a table ([[{key}]])")
        for i, item in enumerate(doc.get("residents", [])):
            for k in item:
                if k not in RESIDENT_KEYS:
                    raise ScenarioError(
                        f"{p}: residents[{i}].{k}: unknown field (known: "
                        f"{', '.join(sorted(RESIDENT_KEYS))})"
                    )
        steps = doc.get("steps", [])
        for i, step in enumerate(steps):
            actions = set(step) & STEP_KEYS
            if len(actions) != 1 or set(step) - STEP_KEYS - STEP_EXTRAS:
                raise ScenarioError(
                    f"{p}: steps[{i}] needs exactly one of {', '.join(sorted(STEP_KEYS))} and 'at'"
                )
            for key in ("at", "wait"):
                if key in step:
                    _seconds(p, f"steps[{i}].{key}", step[key])
            if "clock" in step:
                _datetime(p, f"steps[{i}].clock", step["clock"])
        if "settle" in doc:
            _seconds(p, "settle", doc["settle"])
        start = _datetime(p, "start", doc.get("start", "2026-03-02T10:00"))
        return cls(
            p,
            doc.get("name", p.stem),
            doc.get("description", ""),
            start,
            doc.get("config", {}),
            doc.get("residents", []),
            steps,
            doc.get("expect"),
            extra={k: v for k, v in doc.items() if k in EXTRA_KEYS},
        )


# The longest a scenario's times may reach: a week of simulated time (a step's ``at``,
# ``wait``, the final ``settle``). Longer is a typo (1e7 ran for minutes, ticking).
MAX_SECONDS = 7 * 86400


def _seconds(path: Path, where: str, value: Any) -> float:
    """``value`` as seconds of simulated time, or ScenarioError naming ``where``."""
    from doorpi.validation import safe_repr

    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not 0 <= value <= MAX_SECONDS:  # NaN fails both comparisons
        shown = safe_repr(value) if isinstance(value, str) else repr(value)
        raise ScenarioError(
            f"{path}: {where}: {shown} is not a number of seconds from 0 to {MAX_SECONDS} (a week)"
        )
    return float(value)


def _datetime(path: Path, where: str, value: Any) -> datetime:
    """``value`` as a local date and time, or ScenarioError naming ``where``."""
    from doorpi.validation import safe_repr

    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ScenarioError(
            f"{path}: {where}: {safe_repr(value)} is not a date and time (like 2026-03-02T08:00)"
        ) from None


def _misplaced(key: str, value: Any) -> str:
    """One line for an unknown top-level key: where it belongs, if it is a config section."""
    import difflib
    import tomllib

    from doorpi.config import default_config_text

    sections = set(tomllib.loads(default_config_text())) | {"schedules"}
    if key in sections:
        shape = f"[config.{key}]" if isinstance(value, dict) else f"config.{key}"
        return f"{key}: not a scenario key; the gate's settings belong under {shape}"
    near = difflib.get_close_matches(key, sorted(TOP_KEYS), n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return f"{key}: unknown key{hint}; a scenario has {', '.join(sorted(TOP_KEYS))}"


@dataclass
class ScenarioRun:
    events: list[dict[str, Any]]
    relay_states: list[bool]  # the strike released (True) or locked, in pin order
    site: SimulatedSite | None = None
    # A door mode (unlock window, fire release) held the strike released as the run
    # ended: released at the end is then right (the shutdown relocks it).
    held_at_end: bool = False

    @property
    def significant(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] not in CHATTER]

    def safety_problem(self) -> str | None:
        """None if the strike behaved safely, else what went wrong: it was released
        exactly once per ``relay_on`` and locked again each time, ended locked
        (de-energised fail-secure, energised fail-safe: ``relay_states`` are read
        through the polarity), and was never released more often than access was
        granted (every scenario, with or without an expect list). A door mode that holds the strike released (fire release,
        unlock window: ``relay_on`` with ``seconds`` 0 after its ``door_mode``
        event, doorpi.core.modes) counts as a grant; any other hold is a problem."""
        ons = sum(1 for e in self.events if e["event"] == "relay_on")
        offs = sum(1 for e in self.events if e["event"] == "relay_off")
        states = self.relay_states
        rises = sum(1 for a, b in itertools.pairwise(states) if b and not a)
        grants = sum(1 for e in self.events if e["event"] == "access" and e.get("granted"))
        for i, e in enumerate(self.events):
            if e["event"] != "relay_on" or e.get("seconds") != 0:
                continue  # a timed unlock (a grant's)
            mode = next((m for m in reversed(self.events[:i]) if m["event"] == "door_mode"), {})
            if mode.get("mode") not in HOLDING_MODES:
                return f"strike: held released at event {i} without a mode that holds it"
            grants += 1
        if ons != offs:
            return f"strike: {ons} relay_on but {offs} relay_off"
        if rises != ons:
            return f"strike: released {rises} times for {ons} relay_on"
        if states and states[-1] and not self.held_at_end:
            return "strike: still released at the end (no door mode holds it)"
        if ons > grants:
            return f"strike: released {ons} times for {grants} grants"
        return None

    def mismatch(self, expect: list[dict[str, Any]]) -> str | None:
        """None if the significant events match ``expect`` exactly, else what differs."""
        got = self.significant
        for i, want in enumerate(expect):
            if i >= len(got):
                return f"event {i}: expected {want}, got nothing more"
            actual = {k: got[i].get(k) for k in want}
            if actual != want:
                return f"event {i}: expected {want}, got {got[i]}"
        if len(got) > len(expect):
            return f"event {len(expect)}: unexpected {got[len(expect)]}"
        return None


def run(scenario: Scenario, data_dir: Path | None = None, keep: bool = False) -> ScenarioRun:
    """Run ``scenario`` in virtual time on a simulated site in ``data_dir`` (None: a temp
    dir, removed afterwards unless ``keep``: then the kept site's caller owns it)."""
    from doorpi.config import ConfigError

    if data_dir is None and not keep:
        with scratch_data_dir(None) as tmp:
            return run(scenario, tmp)
    events: list[dict[str, Any]] = []
    try:
        cfg = sim_config(scenario.config, data_dir or temp_data_dir())
    except ConfigError as exc:
        raise ScenarioError(f"{scenario.path}: config: {exc}") from None
    if cfg.face.enabled:
        _record_demo_assessment(cfg, scenario)
    clock = ManualClock(0.0, cfg.site.tz)
    clock.set_wall(clock.epoch(scenario.start))
    site = SimulatedSite(cfg, clock, observers=[events.append])
    site.scenario_path = scenario.path
    try:
        for i, spec in enumerate(scenario.residents):
            try:
                rid = site.add_resident({k: v for k, v in spec.items() if k != "face"})
                if spec.get("face"):
                    _enrol_face(site, rid, resolve(scenario.path, str(spec["face"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise ScenarioError(f"{scenario.path}: residents[{i}]: {exc}") from None
        # The strike's whole history, start-up included: an unlock window open at the
        # start releases it before the first step (its relay_on is an event too).
        now = 0.0
        for i, step in enumerate(sorted(scenario.steps, key=lambda s: s.get("at", 0.0))):
            at = float(step.get("at", now))
            if at > now:
                site.advance(at - now)
                now = at
            try:
                now += _do(site, step, clock)
            except (ValueError, KeyError) as exc:
                raise ScenarioError(f"{scenario.path}: steps[{i}]: {exc}") from None
        site.advance(float(scenario.extra.get("settle", cfg.door.unlock_seconds + 1.0)))
        # Released, read through the strike's polarity: a fail-safe maglock is locked
        # while energised, so its pin high at the end is the safe state (doorpi.hardware.strike).
        relay = [bool(s.state) == cfg.door.fail_secure for s in site.strike_pin.states]
        held = bool(site.gate.door.held)
    finally:
        if not keep:
            site.close()
    return ScenarioRun(events, relay, site if keep else None, held)


def _flag(step: dict[str, Any], key: str) -> bool:
    """A step's on/off value: a TOML boolean only (``"false"`` as text would read as
    true). Raises ValueError naming the key."""
    value = step[key]
    if not isinstance(value, bool):
        raise ValueError(f"{key} takes true or false, got {value!r}")
    return value


def _do(site: SimulatedSite, step: dict[str, Any], clock: ManualClock) -> float:
    """Perform one step; return the virtual seconds it took."""
    if "card" in step:
        site.card(str(step["card"]))
    elif "card_fault" in step:
        site.card_fault(str(step["card_fault"]))
    elif "keys" in step:
        keys = step["keys"]
        if not isinstance(keys, str):  # keys = 1234 would type a number's digits by luck
            raise ValueError(f'keys takes the keys as text, like keys = "101#2468#", got {keys!r}')
        for k in keys:
            site.key(k)
            site.advance(0.2)
        return 0.2 * len(keys)
    elif "door" in step:
        if step["door"] not in ("open", "closed"):
            raise ValueError(f"door must be 'open' or 'closed', got {step['door']!r}")
        site.door(step["door"] == "open")
    elif "exit" in step:
        if step["exit"] is not True:  # a press; `exit = false` would be ignored silently
            raise ValueError(
                f"exit takes true (one press of the exit button), got {step['exit']!r}"
            )
        return site.press_exit()
    elif "tamper" in step:
        site.tamper(_flag(step, "tamper"))
    elif "fire" in step:  # the fire panel's contact: true = alarm
        site.fire(_flag(step, "fire"))
    elif "fire_wiring" in step:  # "cut" or "whole": the supervision loop
        if step["fire_wiring"] not in ("cut", "whole"):
            raise ValueError(f"fire_wiring must be 'cut' or 'whole', got {step['fire_wiring']!r}")
        site.fire_wiring(step["fire_wiring"] == "whole")
    elif "lockdown_switch" in step:
        site.lockdown_switch(_flag(step, "lockdown_switch"))
    elif "lockdown" in step:  # as `doorpi lockdown on|off` (the gate sees it within 1 s)
        from doorpi.doormodes import write_lockdown

        write_lockdown(site.storage.db, _flag(step, "lockdown"), "admin", "scenario", clock.wall())
    elif "pin_clear" in step:  # as `doorpi pin clear ID` on the device, its warning noted
        from doorpi.privacy.parity import warn_lines

        rid = step["pin_clear"]
        if not isinstance(rid, int) or isinstance(rid, bool) or rid < 1:
            raise ValueError(f"pin_clear takes a resident's number (1, 2, ...), got {rid!r}")
        if site.storage.residents.get(rid) is None:
            raise ValueError(f"pin_clear: no resident {rid}")
        site.storage.residents.set_pin_hash(rid, None, clock.wall())
        site.gate.note("pin_cleared", resident_id=rid,
                       warnings=warn_lines(site.cfg, site.storage, rid))  # fmt: skip
    elif "wait" in step:
        site.advance(float(step["wait"]))
        return float(step["wait"])
    elif "clock" in step:
        clock.set_wall(clock.epoch(datetime.fromisoformat(str(step["clock"]))))
    elif "face" in step:
        frames = list(face_frames(site.scenario_path, step))
        return 0.1 * site.face(frames)
    elif "face_live" in step:
        fps, frames = live_turn_frames(site, resolve(site.scenario_path, str(step["face_live"])))
        return site.face(frames, seconds_per_frame=1.0 / fps) / fps
    return 0.0


def live_turn_frames(site: SimulatedSite, person_dir: Path) -> tuple[int, list[Any]]:
    """The resident follows the gate's instruction: a stand-in for a live head turn
    to the side the challenge asked, made of that person's photos at the right
    yaw (see `doorpi eval liveness` and docs/liveness.md)."""
    from doorpi.cli import eval_liveness as el
    from doorpi.hardware.camera import Frame, load_rgb
    from doorpi.vision.liveness import LivenessConfig

    engine = site.face_engine
    challenge = getattr(engine, "_challenge", None)
    if challenge is None:
        raise ValueError("face_live needs an open face window with a liveness challenge")
    scene = el.Scene()
    shots = el.survey(person_dir.parent, engine.liveness, lambda p: load_rgb(p, max_side=640),
                      scene, people=[person_dir.name])  # fmt: skip
    seqs = [q for q in el.live_sequences(shots) if q.turn is challenge.turn]
    if not seqs:
        raise ValueError(f"{person_dir.name}: no photos that make a {challenge.turn.value} turn")
    n = el.n_frames(LivenessConfig())
    photos = {rel: load_rgb(person_dir.parent / rel, max_side=640) for rel in
              {s.rel for s in seqs[0].shots}}  # fmt: skip
    frames = [
        Frame(f, luma=f[:, :, 1]) for f in el.live_frames(seqs[0], photos.__getitem__, scene, n)
    ]
    return el.FPS, frames


def resolve(scenario_path: Path, ref: str) -> Path:
    """``shared:faces/X/1.jpg`` -> the shared data folder (beside the clone, or
    $DOORPI_SHARED_DIR); other relative paths are relative to the scenario."""
    if ref.startswith("shared:"):
        from doorpi.fsutil import SHARED_ENV, find_shared_dir

        rel = ref.removeprefix("shared:")
        base = find_shared_dir(scenario_path.parent, Path.cwd(), need=rel)
        if base is None:
            raise ValueError(f"{ref}: not found in the shared data folder (set {SHARED_ENV})")
        return base / rel
    p = Path(ref)
    return p if p.is_absolute() else scenario_path.parent / p


def face_frames(scenario_path: Path, step: dict[str, Any]) -> Iterator[Any]:
    """Frames for a face step: every photo of a folder once, or one photo
    ``frames`` times (moved by ``shift`` pixels per frame if given); a list of
    photos is several people in one frame, the first in front (asking), the
    others smaller behind (doorpi.vision.degrade.crowd)."""
    import numpy as np

    from doorpi.hardware.camera import FolderSource, Frame, load_rgb

    if isinstance(step["face"], list):
        from doorpi.vision.degrade import crowd

        people = [load_rgb(resolve(scenario_path, str(r)), max_side=640) for r in step["face"]]
        rgb = crowd(*people)
        for _ in range(int(step.get("frames", 1))):
            yield Frame(rgb, luma=rgb[:, :, 1], name="crowd")
        return

    if step["face"] == "empty":  # the camera sees the empty entrance
        rgb = np.full((250, 250, 3), 96, np.uint8)
        for _ in range(int(step.get("frames", 1))):
            yield Frame(rgb, luma=rgb[:, :, 1], name="empty")
        return
    path = resolve(scenario_path, str(step["face"]))
    if path.is_dir():
        for f in FolderSource(path, max_side=640).frames():
            yield Frame(f.rgb, luma=f.rgb[:, :, 1], name=f.name)
        return
    rgb = load_rgb(path, max_side=640)
    shift = int(step.get("shift", 0))
    for i in range(int(step.get("frames", 1))):
        img = np.roll(rgb, shift * i, axis=1) if shift else rgb
        # The green channel stands in for the camera's low-resolution luma plane.
        yield Frame(img, luma=img[:, :, 1], name=path.name)


def _record_demo_assessment(cfg: Any, scenario: Scenario) -> None:
    """Scenarios with face on run as a site that has done its impact assessment."""
    import time

    from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
    from doorpi.store import Storage

    store = Storage.open(cfg.site.data_dir)
    try:
        reg = AssessmentRegistry(store.db, store.audit)
        if reg.latest() is None:
            reg.record(ImpactAssessment(
                purpose=f"Scenario {scenario.name}: open the gate for residents who opt in.",
                necessity="Demonstration; card and PIN remain at every door.",
                impact="Templates of the scenario's residents in a throwaway database.",
                measures="Consent, encrypted templates, deletion after the run.",
                author="scenario", created=time.time(),
            ))  # fmt: skip
    finally:
        store.close()


def _enrol_face(site: SimulatedSite, resident_id: int, photo: Path) -> None:
    """Consent (admin present) and a template from one photo, as the admin would."""
    import numpy as np

    from doorpi.hardware.camera import load_rgb

    privacy = site.gate.face_privacy
    engine = site.face_engine
    if privacy is None or engine is None:
        raise ValueError(
            f"face enrolment needs face on: {site.gate.face_problem or 'face.enabled'}"
        )
    from doorpi.privacy.enrolment import EnrolmentError

    try:
        ticket = privacy.start_enrolment(resident_id, "admin_present", by="admin:scenario")
    except EnrolmentError as exc:  # refused up front (e.g. no face-free way in): on record
        site.gate.note("face_enrolment_refused", resident_id=resident_id, reason=str(exc))
        return
    privacy.consent(ticket, confirmed_by="admin:scenario")
    res = engine.inner.pipeline.process(np.asarray(load_rgb(photo, max_side=640)))
    if not res.ok:
        raise ValueError(f"{photo}: no usable face for enrolment ({res.reason})")
    privacy.enrol(resident_id, res.embedding)
    res.embedding = None


def iter_lines(run_: ScenarioRun) -> Iterator[str]:
    import json

    for e in run_.events:
        yield json.dumps(e, separators=(",", ":"))
