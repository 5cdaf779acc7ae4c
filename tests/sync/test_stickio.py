"""Issue #15: the stick's side of an import (doorpi.sync.stickio), run by its own
user in doorpi-usb-sync; the gate's step reads the bundle from a pipe."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from doorpi.sync.bundle import BundleError
from doorpi.sync.stickio import StickError, deliver, fetch, stage_out
from sync.test_cli import paths, run  # noqa: F401  (the fixture, the command runner)

FP = "ab" * 16


def _tar(members: dict[str, bytes], symlink: str | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            link = tarfile.TarInfo(symlink)
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    "bad",
    ["doorpi/../../evil.report", "/etc/cron.d/x", f"doorpi/{FP}.bundle", "doorpi/gates/x.pub",
     f"doorpi/outbox/{FP}/{FP}.sh"],
)  # fmt: skip
def test_deliver_writes_only_the_stick_layout(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StickError, match="not a file an import writes"):
        deliver(_tar({f"doorpi/{FP}.report": b"r", bad: b"x"}), tmp_path, FP)
    assert not (tmp_path / "evil.report").exists() and not (tmp_path / "etc").exists()


def test_deliver_refuses_links_and_removes_withdrawn_outbox_files(tmp_path: Path) -> None:
    with pytest.raises(StickError):
        deliver(_tar({}, symlink=f"doorpi/{FP}.report"), tmp_path, FP)
    other, peer = "cd" * 16, "ef" * 16
    old = tmp_path / "doorpi" / "outbox" / peer
    old.mkdir(parents=True)
    (old / f"{FP}.templates").write_bytes(b"withdrawn")
    (old / f"{other}.templates").write_bytes(b"another gate's")
    names = deliver(_tar({f"doorpi/{FP}.report": b"r", f"doorpi/gates/{FP}.pub": b"k"}),
                    tmp_path, FP)  # fmt: skip
    assert names == [f"doorpi/{FP}.report", f"doorpi/gates/{FP}.pub"]
    assert not (old / f"{FP}.templates").exists()  # this gate no longer exports it
    assert (old / f"{other}.templates").read_bytes() == b"another gate's"


def test_fetch_checks_before_the_gate_sees_a_byte(tmp_path: Path) -> None:
    out = io.BytesIO()
    assert fetch(tmp_path, FP, out) is False  # nothing for this gate: a pairing visit
    folder = tmp_path / "doorpi"
    folder.mkdir()
    (folder / f"{FP}.bundle").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(BundleError, match="not a doorpi bundle"):
        fetch(tmp_path, FP, out)
    (folder / f"{FP}.bundle").unlink()
    (folder / f"{FP}.bundle").symlink_to("/etc/passwd")
    with pytest.raises(BundleError):
        fetch(tmp_path, FP, out)
    with pytest.raises(StickError, match="not a gate fingerprint"):
        fetch(tmp_path, "../../x", out)
    assert out.getvalue() == b""


def test_staged_import_applies_and_the_admin_reads_its_report(
    paths: dict[str, Path],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The three steps of doorpi-usb-sync (without the users, which test_systemd runs):
    fetch from the stick, `doorpi sync import - --tar-fd` as a real process, deliver."""
    cfg, stick, adm = str(paths["cfg"]), paths["stick"], ["--admin-dir", str(paths["admin"])]
    run(["admin", "init", "--site-name", "Test Court", *adm], capsys)
    run(["admin", "stick", str(stick), *adm], capsys)
    out = run(["--config", cfg, "keys", "init"], capsys)[1]
    fp = out.split("gate fingerprint: ")[1].split()[0].replace("-", "")
    run(["--config", cfg, "keys", "export", str(stick)], capsys)
    card = stick / "doorpi" / "gates" / f"{fp}.pub"
    assert run(["admin", "gate", "add", str(card), "--fingerprint", fp, *adm], capsys)[0] == 0
    assert run(["admin", "bundle", str(paths["roster"]), str(stick), *adm], capsys)[0] == 0
    assert run(["--config", cfg, "keys", "trust-site", str(stick), "--yes"], capsys)[0] == 0
    (stick / "doorpi" / f"{fp}.report").unlink(missing_ok=True)

    bundle = tmp_path / "bundle"
    with bundle.open("wb") as f:
        assert fetch(stick, fp, f) is True
    tar = tmp_path / "out.tar"
    with bundle.open("rb") as stdin, tar.open("wb") as t:
        p = subprocess.run([sys.executable, "-m", "doorpi", "--config", cfg, "sync", "import",
                            "-", "--tar-fd", str(t.fileno())], stdin=stdin, pass_fds=(t.fileno(),),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert "applied bundle 1: 2 added" in p.stdout and "<stick>/doorpi/" in p.stdout
    assert not (stick / "doorpi" / f"{fp}.report").exists()  # the gate never wrote the stick
    with tar.open("rb") as t:
        names = deliver(t, stick, fp)
    assert f"doorpi/{fp}.report" in names
    code, out = run(["admin", "report", "read", str(stick), *adm], capsys)
    assert code == 0 and "applied bundle 1" in out, out


def test_stage_out_leaves_the_bundle_and_strangers_out(tmp_path: Path) -> None:
    (tmp_path / "doorpi" / "gates").mkdir(parents=True)
    (tmp_path / "doorpi" / f"{FP}.bundle").write_bytes(b"b")
    (tmp_path / "doorpi" / f"{FP}.report").write_bytes(b"r")
    (tmp_path / "doorpi" / "notes.txt").write_bytes(b"n")
    buf = io.BytesIO()
    assert stage_out(tmp_path, buf, {f"doorpi/{FP}.bundle"}) == 1
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        assert tar.getnames() == [f"doorpi/{FP}.report"]


def test_stickio_cli_one_line(tmp_path: Path) -> None:
    (tmp_path / "doorpi").mkdir()
    (tmp_path / "doorpi" / f"{FP}.bundle").write_bytes(b"junk" * 10)
    p = subprocess.run([sys.executable, "-m", "doorpi.sync.stickio", "fetch", str(tmp_path), FP],
                       capture_output=True, text=True, timeout=60, env={**os.environ})  # fmt: skip
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
