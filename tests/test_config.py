"""Config validation: every mistake is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from doorpi.config import ConfigError, default_config_text, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "doorpi.toml"
    p.write_text(text)
    return p


def test_shipped_default_config_is_valid(tmp_path):
    cfg = load_config(write(tmp_path, default_config_text()))
    assert cfg.gpio.strike == 17
    assert cfg.door.fail_secure
    assert {frozenset({"card"}), frozenset({"pin"})} == set(cfg.door.policy.default)
    assert set(cfg.schedules) >= {"always", "daytime", "workdays"}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('[door]\nunlock_seconds = "five"', 'door.unlock_seconds: must be a number from 0.5 to 120, got "five"'),
        ("[door]\nunlock_secs = 5", "door.unlock_secs: unknown key (did you mean unlock_seconds?)"),
        ('[door]\naccess = ["face"]', "door.access: face is the only way in"),
        ('[door]\naccess = ["card", "retina"]', "door.access: unknown factor 'retina'"),
        ('[door]\nstrike = "fail-open"', "door.strike: must be one of fail-secure, fail-safe"),
        ("[gpio]\nstrike = 40", "gpio.strike: must be a BCM GPIO number from 2 to 27"),
        ("[gpio]\nclose_confirm_seconds = 30", "gpio.close_confirm_seconds: must be a number from 0 to 5, got 30"),
        ("[gpio]\nbuzzer = 17", "gpio.buzzer: GPIO17 is already used by gpio.strike"),
        ("[keypad]\nrows = [5, 6]", "keypad.rows: must list 4 BCM GPIO numbers"),
        ('[keypad]\nkind = "usb"', 'keypad.device: must name the evdev device'),
        ("[keypad]\npin_min_length = 6\npin_max_length = 5", "keypad.pin_max_length: must not be below"),
        ('[schedules]\nnight = ["mon 22:00-22:00"]', "schedules.night: window 'mon 22:00-22:00' is empty"),
        ('[site]\ntimezone = "Mars/Olympus"', "site.timezone: unknown time zone 'Mars/Olympus'"),
        ('[site]\ntimezone = "asia/shanghai"', "site.timezone: unknown time zone 'asia/shanghai' (did you mean Asia/Shanghai?)"),
        ('[site]\ntimezone = "../etc/passwd"', "site.timezone: '../etc/passwd' is not an IANA time zone name"),
        ("[site]\ntimezone = 8", "site.timezone: must be a string"),
        ("[dor]\nname = 'x'", "dor: unknown section (did you mean door?)"),
        ("[door\nname = 'x'", "not valid TOML"),
        ('[[door.schedule_access]]\nschedule = "nope"\naccess = ["card"]', "door.schedule_access[0]: unknown schedule"),
        ('[schedules]\nnight = ["daily 00:00-06:00"]\n[door]\nschedule_access = [{schedule = "night", access = ["face"]}]',
         "door.schedule_access[0]: face is the only way in"),
        ("[audit]\nretention_days = 0", "audit.retention_days: must be a whole number from 1 to 3650"),
        ("[door]\nexit_button_unlocks = 1", "door.exit_button_unlocks: must be true or false"),
        # What the file holds is escaped: a newline or a bidi control in a value
        # cannot split the message or reorder it (found by the config fuzzer).
        ('[audit]\ngovernance_retention_days = "\\n"', 'got "\\n"'),
        ('[door]\nunlock_seconds = "\\u202e5"', 'got "\\u202e5"'),
        ('[door]\nstrike = "fail-\\r\\nsecure"', 'got "fail-\\r\\nsecure"'),
        ("[gpio]\nstrike = [\"\\u2066\"]", "got ['\\u2066']"),
        # Found by a newcomer: accepted by `config check`, then split `doorpi status`.
        ('[site]\ndata_dir = "/tmp/da\\nta"', "site.data_dir: contains U+000A LINE FEED"),
        ('[site]\nname = "Ex\\u202eample"', "site.name: contains U+202E"),
        ('[door]\nname = "Gate\\u2066 1"', "door.name: contains U+2066"),
    ],
)  # fmt: skip
def test_each_mistake_is_one_line_naming_the_key(tmp_path, text, fragment):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(str(p))
    assert fragment in msg


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_scheduled_access_rule(tmp_path):
    cfg = load_config(write(tmp_path, '[schedules]\nnight = ["daily 00:00-06:00"]\n'
                            '[door]\naccess = ["card"]\n'
                            'schedule_access = [{schedule = "night", access = ["card+pin"]}]\n'))  # fmt: skip
    from datetime import datetime

    assert cfg.door.policy.rule_at(datetime(2026, 3, 2, 3, 0), cfg.schedules) == (
        frozenset({"card", "pin"}),
    )
    assert cfg.door.policy.rule_at(datetime(2026, 3, 2, 12, 0), cfg.schedules) == (
        frozenset({"card"}),
    )


def test_relative_data_dir_is_relative_to_the_config(tmp_path):
    cfg = load_config(write(tmp_path, '[site]\ndata_dir = "state"'))
    assert cfg.site.data_dir == tmp_path / "state"


def test_camera_orientation_settings(tmp_path):
    cfg = load_config(write(tmp_path, "[camera]\nrotation = 180\nhflip = true"))
    assert (cfg.camera.rotation, cfg.camera.hflip, cfg.camera.vflip) == (180, True, False)
    assert load_config(write(tmp_path, "")).camera.rotation == 0
    for text, fragment in [
        ("[camera]\nrotation = 45", "camera.rotation: must be 0, 90, 180 or 270"),
        ("[camera]\nrotation = 360", "camera.rotation: must be a whole number from 0 to 270"),
        ('[camera]\nvflip = "yes"', "camera.vflip: must be true or false"),
        ("[camera]\nflip = true", "camera.flip: unknown key"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_config(write(tmp_path, text))
        assert fragment in str(err.value)
