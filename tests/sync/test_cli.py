"""The admin's whole workflow through the commands, as the README describes it."""

from __future__ import annotations

import argparse
import json
import stat
import sys
from pathlib import Path

import pytest

from doorpi.cli import CliError
from doorpi.cli import admin as admin_cli
from doorpi.cli import keys as keys_cli
from doorpi.cli import status as status_cli
from doorpi.cli import sync as sync_cli

ROSTER = """
[site]
name = "Test Court"

[[residents]]
key = "a-3101-wang"
name = "Alice Wang"
unit = "3-101"
keypad_id = "101"
pin = "2468"
cards = ["04a1b2c3d4e5f6"]
valid_until = 2099-06-30

[[residents]]
key = "b-3102-li"
name = "Bo Li"
keypad_id = "102"
schedule = "workdays"
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="doorpi")
    parser.add_argument("--config")
    sub = parser.add_subparsers(dest="command")
    for module in (keys_cli, sync_cli, admin_cli, status_cli):
        module.register(sub)
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
    except CliError as exc:
        print(f"doorpi: {exc}", file=sys.stderr)
        code = 2
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(
        f'[site]\ndata_dir = "{tmp_path / "gate"}"\n[door]\nname = "main-gate"\n'
        "[pin]\nopslimit = 1\nmemlimit_kib = 8192\n"
        '[schedules]\nworkdays = ["mon-fri 07:00-19:00"]\n'
    )
    stick = tmp_path / "stick"
    stick.mkdir()
    roster = tmp_path / "roster.toml"
    roster.write_text(ROSTER)
    roster.chmod(0o600)
    return {"cfg": cfg, "stick": stick, "admin": tmp_path / "admin", "roster": roster,
            "gate": tmp_path / "gate"}  # fmt: skip


def test_admin_workflow_end_to_end(
    paths: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, stick, adm = str(paths["cfg"]), paths["stick"], ["--admin-dir", str(paths["admin"])]
    # 1. the laptop: site key
    code, out = run(["admin", "init", "--site-name", "Test Court", *adm], capsys)
    assert code == 0 and "site fingerprint:" in out
    site_fp = out.split("site fingerprint: ")[1].split()[0]
    code, out = run(["admin", "stick", str(stick), *adm], capsys)
    assert code == 0 and (stick / "doorpi" / "site.pub").exists()
    # 2. the gate: keys (firstboot does this), public key to the stick
    code, out = run(["--config", cfg, "keys", "init"], capsys)
    assert code == 0
    keys = paths["gate"] / "keys"
    assert stat.S_IMODE((keys / "gate-x25519.key").stat().st_mode) == 0o600
    gate_fp = out.split("gate fingerprint: ")[1].split()[0]
    assert run(["--config", cfg, "keys", "init"], capsys)[0] == 2  # never twice
    code, out = run(["--config", cfg, "keys", "export", str(stick)], capsys)
    assert code == 0
    card = stick / "doorpi" / "gates" / (gate_fp.replace("-", "") + ".pub")
    assert card.exists()
    # 3. the laptop: register the gate, check the roster, write bundles
    code, out = run(["admin", "gate", "add", str(card), "--fingerprint", gate_fp, *adm], capsys)
    assert code == 0 and "gate 'main-gate' registered" in out
    code, out = run(["admin", "check", str(paths["roster"]), *adm], capsys)
    assert out.strip().endswith("2 residents, 1 cards, 1 PINs: ok")
    code, out = run(["admin", "bundle", str(paths["roster"]), str(stick), *adm], capsys)
    assert code == 0 and "sequence 1" in out and "main-gate" in out
    # 4. the gate, first time: trust the site key from the stick (pairing)
    code, out = run(["--config", cfg, "sync", "import", str(stick)], capsys)
    assert code == 1 and "refused (no_site_key)" in out
    code, out = run(["--config", cfg, "keys", "trust-site", str(stick), "--fingerprint", "0" * 16],
                    capsys)  # fmt: skip
    assert code == 2 and "does not match --fingerprint" in out
    # A prefix of the right fingerprint is not enough: a key can be ground to match 64 bits.
    code, out = run(["--config", cfg, "keys", "trust-site", str(stick), "--fingerprint",
                     site_fp[:19]], capsys)  # fmt: skip
    assert code == 2 and "does not match --fingerprint" in out
    code, out = run(["--config", cfg, "keys", "trust-site", str(stick), "--fingerprint", site_fp],
                    capsys)  # fmt: skip
    assert code == 0
    # 5. the gate: plug the stick in (udev runs exactly this)
    code, out = run(["--config", cfg, "sync", "import", str(stick)], capsys)
    assert code == 0, out
    assert out.startswith("doorpi sync: applied bundle 1: 2 added, 1 pins_hashed")
    # the same stick plugged in again (left in, or re-plugged): nothing to do, not a fault
    code, out = run(["--config", cfg, "sync", "import", str(stick)], capsys)
    assert code == 0 and "bundle 1 already applied here: nothing changed" in out, out
    code, out = run(["--config", cfg, "keys", "show"], capsys)
    assert "last bundle: 1" in out and site_fp in out
    # 6. the laptop: read what the gate said
    code, out = run(["admin", "report", "read", str(stick), "--audit", *adm], capsys)
    # the re-plugged stick's report: current, nothing for the admin to do (exit 0)
    assert code == 0 and "main-gate" in out and "NEEDS ATTENTION" not in out, out
    assert "bundle 1 already applied here: nothing changed" in out
    assert "2 residents (2 active)" in out and "database ok" in out
    code, out = run(["admin", "gate", "list", *adm], capsys)
    assert "main-gate" in out
    # 7. a second round: remove Bo, change Alice's PIN
    paths["roster"].write_text(ROSTER.split("[[residents]]\nkey = \"b-3102-li\"")[0]
                               .replace('"2468"', '"1357"'))  # fmt: skip
    assert run(["admin", "bundle", str(paths["roster"]), str(stick), *adm], capsys)[0] == 0
    code, out = run(["--config", cfg, "sync", "import", str(stick)], capsys)
    assert "applied bundle 2: 1 updated, 1 removed, 1 pins_hashed" in out


def test_import_of_a_single_file_and_bad_paths(paths: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    cfg = str(paths["cfg"])
    code, out = run(["--config", cfg, "keys", "init"], capsys)
    gate_fp = out.split("gate fingerprint: ")[1].split()[0].replace("-", "")
    code, out = run(["--config", cfg, "sync", "import", str(paths["stick"])], capsys)
    assert code == 2 and "no doorpi/ folder: not an admin stick" in out
    junk = paths["stick"] / "x.bundle"
    junk.write_bytes(b"GIF89a" + bytes(100))
    code, out = run(["--config", cfg, "sync", "import", str(junk)], capsys)
    assert code == 1 and (paths["stick"] / f"{gate_fp}.report").exists()
    assert not (paths["stick"] / "x.report").exists()
    code, out = run(["admin", "show", "--admin-dir", str(paths["admin"])], capsys)
    assert code == 2 and "run `doorpi admin init`" in out


def test_commands_need_keys_first(
    paths: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(["--config", str(paths["cfg"]), "sync", "import", str(paths["stick"])], capsys)
    assert code == 2 and "run `doorpi keys init` first" in out


def test_two_gates_share_a_face_through_the_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`doorpi sync import` wires the real vault on both sides: export and receipt."""
    from doorpi.config import load_config
    from doorpi.privacy.enrolment import build_face_privacy
    from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
    from doorpi.store import Storage
    from sync.helpers import PIA_TEXT, unit

    adm = ["--admin-dir", str(tmp_path / "admin")]
    stick = tmp_path / "stick"
    stick.mkdir()
    roster = tmp_path / "roster.toml"
    roster.write_text(ROSTER.replace('keypad_id = "101"',
                                     'keypad_id = "101"\nshare_face_with_site_gates = true'))  # fmt: skip
    roster.chmod(0o600)
    run(["admin", "init", "--site-name", "Test Court", *adm], capsys)
    run(["admin", "stick", str(stick), *adm], capsys)
    cfgs = {}
    for name in ("north-gate", "south-gate"):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            f'[site]\ndata_dir = "{tmp_path / name}"\ncontroller = "Test Court Co."\n'
            f'contact = "+86 10 5555 0100"\n[door]\nname = "{name}"\n'
            "[pin]\nopslimit = 1\nmemlimit_kib = 8192\n"
            '[schedules]\nworkdays = ["mon-fri 07:00-19:00"]\n'
            "[face]\nenabled = true\nallow_site_sharing = true\n"
        )
        cfgs[name] = str(cfg)
        out = run(["--config", str(cfg), "keys", "init"], capsys)[1]
        fp = out.split("gate fingerprint: ")[1].split()[0]
        run(["--config", str(cfg), "keys", "export", str(stick)], capsys)
        assert (
            run(["--config", str(cfg), "keys", "trust-site", str(stick), "--yes"], capsys)[0] == 0
        )
        pub = stick / "doorpi" / "gates" / (fp.replace("-", "") + ".pub")
        assert run(["admin", "gate", "add", str(pub), "--fingerprint", fp, *adm], capsys)[0] == 0

    def visit(name: str) -> str:
        code, out = run(["admin", "bundle", str(roster), str(stick), *adm], capsys)
        assert code == 0, out
        code, out = run(["--config", cfgs[name], "sync", "import", str(stick)], capsys)
        assert code == 0, out
        return out

    visit("north-gate")
    visit("south-gate")
    code, out = run(["admin", "gate", "list", *adm], capsys)
    assert "card key gate: north-gate" in out
    # Alice enrols at the north gate, agreeing to the site's other gates.
    cfg = load_config(Path(cfgs["north-gate"]))
    storage = Storage.open(cfg.site.data_dir)
    AssessmentRegistry(storage.db, storage.audit).record(
        ImpactAssessment(**PIA_TEXT, author="DPO Li", created=1.0)
    )
    privacy = build_face_privacy(cfg, storage)
    alice = storage.residents.by_keypad_id("101")
    ticket = privacy.start_enrolment(alice.id, "admin_present", by="admin:li")
    privacy.consent(ticket, "admin:li", share_site_gates=True)
    privacy.enrol(alice.id, unit(11))
    storage.close()
    # The south gate takes face templates only with its own impact assessment on file.
    south_store = Storage.open(load_config(Path(cfgs["south-gate"])).site.data_dir)
    AssessmentRegistry(south_store.db, south_store.audit).record(
        ImpactAssessment(**PIA_TEXT, author="DPO Li", created=1.0)
    )
    south_store.close()

    visit("north-gate")  # north seals Alice's template for the south gate
    assert len(list((stick / "doorpi" / "outbox").rglob("*.templates"))) == 1
    out = visit("south-gate")  # the laptop relays it
    assert "applied bundle 4: 2 unchanged, 1 templates_stored" in out
    cfg = load_config(Path(cfgs["south-gate"]))
    storage = Storage.open(cfg.site.data_dir)
    south = build_face_privacy(cfg, storage)
    assert south.identify(unit(11), 0.45) == storage.residents.by_keypad_id("101").id
    code, out = run(["--config", cfgs["south-gate"], "status", "--json"], capsys)
    status = json.loads(out)
    assert (status["sync_other_gates"], status["face_consents_from_other_gates"]) == (1, 1)
    assert status["sync_last_bundle"]["sequence"] == 4 and status["card_key"] == "this gate's own"
    # Alice withdraws at the south gate. The admin forgets `report read`: the next
    # `admin bundle` reads the reports it is about to replace and passes it on.
    south.withdraw(storage.residents.by_keypad_id("101").id, by="resident", channel="gate")
    storage.close()
    code, out = run(["--config", cfgs["south-gate"], "sync", "import", str(stick)], capsys)
    assert code == 0 and "already applied here" in out  # nothing new, but a report all the same
    code, out = run(["admin", "bundle", str(roster), str(stick), *adm], capsys)
    assert "reports on the stick, read now:" in out
    assert "a-3101-wang withdrew face consent here at" in out
    assert "1 face withdrawals" in out
    code, out = run(["--config", cfgs["north-gate"], "sync", "import", str(stick)], capsys)
    assert "1 face_withdrawn" in out
    cfg = load_config(Path(cfgs["north-gate"]))
    storage = Storage.open(cfg.site.data_dir)
    assert build_face_privacy(cfg, storage).vault.count() == 0
    storage.close()


def test_admin_check_names_every_residents_problem_in_one_run(
    paths: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer needed four runs of `admin check` for a roster with four mistakes."""
    adm = ["--admin-dir", str(paths["admin"])]
    assert run(["admin", "init", "--site-name", "Test Court", *adm], capsys)[0] == 0
    bad = paths["roster"].parent / "bad.toml"
    bad.write_text('[[residents]]\nname = "A"\n[[residents]]\nkey = "b-1"\nname = "B"\npin = 2468\n'
                   '[[residents]]\nkey = "c-1"\nname = "C"\ncards = ["zz"]\n')  # fmt: skip
    for cmd in (["check", str(bad)], ["bundle", str(bad), str(paths["stick"])]):
        code, out = run(["admin", *cmd, *adm], capsys)
        lines = out.splitlines()
        assert code == 2 and lines[-1] == f"doorpi: {bad}: 3 residents have problems (listed above)"
        assert [ln.split(":")[0] for ln in lines[-4:-1]] == [
            "  residents[0].key", "  residents[1] (b-1).pin", "  residents[2] (c-1).cards[0].uid"
        ], lines  # fmt: skip
