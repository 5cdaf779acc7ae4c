"""The test harness's own pcscd: private to this pytest session, so sessions run
side by side (tests/pcsc_fixtures.py). Real pcscd + vpcd, real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doorpi import selftest
from doorpi.core.events import CardPresented
from doorpi.sim.vpcd_card import PORTS_ENV, VPCD_PORTS, VirtualCard, vpcd_ports
from pcsc_fixtures import (
    READER_0,
    READER_1,
    RUN_DIR,
    SOCKET_ENV,
    PcscDaemon,
    PcscdError,
    PcscSession,
    pick_ports,
)

UID = bytes.fromhex("04C0FFEE")
ALL_BUT_READER = ",".join(n for n in selftest.CHECK_NAMES if n != "reader")

#: A PC/SC client in another process: lists the readers, then (with an argument)
#: waits for a card on READER_0 and prints its UID (FF CA 00 00 00).
CLIENT = r"""
import json, sys
from smartcard.CardRequest import CardRequest
from smartcard.Exceptions import CardRequestTimeoutException
from smartcard.System import readers
out = {"readers": sorted(str(r) for r in readers())}
if len(sys.argv) > 1:
    print(json.dumps(out), flush=True)
    try:
        svc = CardRequest(timeout=float(sys.argv[1]), readers=[sys.argv[2]]).waitforcard()
        svc.connection.connect()
        data, sw1, sw2 = svc.connection.transmit([0xFF, 0xCA, 0, 0, 0])
        out = {"uid": bytes(data).hex(), "sw": f"{sw1:02X}{sw2:02X}"}
    except CardRequestTimeoutException:
        out = {"uid": None}
print(json.dumps(out), flush=True)
"""


def client(sock: Path | str, *args: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, SOCKET_ENV: str(sock)}
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[arg-type]
    )


def readers_via(sock: Path | str) -> list[str]:
    out, err = client(sock).communicate(timeout=30)
    return json.loads(out)["readers"] if out else [f"error: {err.strip()[-300:]}"]


# ------------------------------------------------------------------ ports, no daemon


def test_vpcd_ports_default_and_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTS_ENV, raising=False)
    assert vpcd_ports() == VPCD_PORTS == {READER_0: 35963, READER_1: 35964}
    assert VirtualCard(UID).port == 35963
    monkeypatch.setenv(PORTS_ENV, "24000, 24001")
    assert vpcd_ports() == {READER_0: 24000, READER_1: 24001}
    assert VirtualCard(UID).port == 24000
    assert VirtualCard(UID, port=1234).port == 1234


@pytest.mark.parametrize("bad", ["24000", "a,b", "24000,24001,24002", "0,1", "24000,70000"])
def test_vpcd_ports_bad_value_names_the_variable(monkeypatch, bad) -> None:
    monkeypatch.setenv(PORTS_ENV, bad)
    with pytest.raises(ValueError, match=rf"^{PORTS_ENV}=.*expected two TCP ports"):
        vpcd_ports()


def test_session_environment_is_exported() -> None:
    """Set at pytest_configure, so subprocesses and libpcsclite (which reads the
    variable once) see this session's daemon and ports."""
    from pcsc_fixtures import current_session

    session = current_session()
    assert os.environ[SOCKET_ENV] == str(session.comm_socket)
    assert vpcd_ports() == session.ports
    assert session.ports[READER_1] == session.ports[READER_0] + 1
    assert session.spare_port == session.ports[READER_0] + 2
    if session.private:
        assert session.run_dir != RUN_DIR and not str(session.comm_socket).startswith("/run/")


def test_shared_fallback_refuses_a_live_daemon_and_clears_a_stale_socket(tmp_path) -> None:
    """Without a private namespace the socket is the machine's: a live one is
    another pcscd (never killed), a dead one is a leftover (removed)."""
    session = PcscSession(tmp_path, private=False, first_port=pick_ports())
    daemon = PcscDaemon(tmp_path, session=session)
    assert daemon.command(tmp_path)[0] == "pcscd"  # no unshare wrapper
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(session.comm_socket))
    live.listen(1)
    session.pid_file.write_text("4242\n\0")  # as pcscd writes it
    try:
        with pytest.raises(
            PcscdError, match=r"another pcscd is already listening.*pid file says 4242"
        ):
            daemon.clear_leftovers()
        assert session.comm_socket.exists() and session.pid_file.exists()
    finally:
        live.close()
    daemon.clear_leftovers()  # nobody listens now: stale
    assert not session.comm_socket.exists() and not session.pid_file.exists()


def test_private_command_bind_mounts_the_session_dir(tmp_path) -> None:
    session = PcscSession(tmp_path / "run", private=True, first_port=24000)
    cmd = PcscDaemon(tmp_path, session=session).command(tmp_path / "conf")
    assert cmd[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    assert cmd[8:10] == [str(tmp_path / "run"), str(RUN_DIR)]
    assert cmd[10:] == ["pcscd", "--foreground", "--apdu", "--config", str(tmp_path / "conf")]


# ------------------------------------------------------------------ the real daemons


def test_session_daemon_is_private(pcsc) -> None:
    if not pcsc.session.private:
        pytest.fail("shared fallback (DOORPI_PCSCD_SHARED=1, or no CAP_SYS_ADMIN to mount)")
    assert pcsc.comm_socket.is_socket()
    assert pcsc.session.pid_file.read_text().strip(" \n\0") == str(pcsc.pid)
    ns = Path(f"/proc/{pcsc.pid}/ns/mnt")
    assert os.readlink(ns) != os.readlink("/proc/self/ns/mnt")
    host_pid = RUN_DIR / "pcscd.pid"
    if host_pid.exists():  # another pcscd on the machine: its pid file is not ours
        assert host_pid.read_text().strip(" \n\0") != str(pcsc.pid)
    # pcscd writes /run/pcscd/pcscd.comm in its namespace; a client reaches it here.
    assert readers_via(pcsc.comm_socket) == [READER_0, READER_1]
    assert readers_via(pcsc.session.run_dir / "nothing.comm")[0].startswith("error")


def test_doorpi_subprocess_reads_the_session_daemon(pcsc, tmp_path) -> None:
    """A `doorpi` CLI run inherits PCSCLITE_CSOCK_NAME; pointed elsewhere it
    finds no pcscd, so the variable is what connects it."""
    args = [
        sys.executable,
        "-m",
        "doorpi",
        "--config",
        str(tmp_path / "none.toml"),
        "selftest",
        "--json",
    ]
    args += ["--skip", ALL_BUT_READER]

    def reader_check(env: dict[str, str]) -> dict[str, str]:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
        checks = json.loads(done.stdout)["checks"]
        return next(c for c in checks if c["name"] == "reader")

    assert reader_check(dict(os.environ)) == {
        "name": "reader",
        "status": "PASS",
        "detail": f"reader: {READER_0}",
    }
    elsewhere = {**os.environ, SOCKET_ENV: str(tmp_path / "no-pcscd.comm")}
    assert "is pcscd running?" in reader_check(elsewhere)["detail"]


def test_second_private_daemon_beside_the_session_one(pcsc, pcsc_reader, pcsc_events, tmp_path):
    """What a second pytest session does: its own socket and ports. A card on
    its reader reaches its clients only; the session's reader sees nothing."""
    if not pcsc.session.private:
        pytest.fail("shared fallback (DOORPI_PCSCD_SHARED=1, or no CAP_SYS_ADMIN to mount)")
    other = PcscSession.create()
    assert other.run_dir != pcsc.session.run_dir
    assert not set(other.ports.values()) & set(pcsc.ports.values())
    daemon = PcscDaemon(tmp_path, session=other)
    try:
        daemon.start(expect=())  # in-process pyscard talks to the session daemon
        end = time.monotonic() + 10
        while readers_via(other.comm_socket) != [READER_0, READER_1]:
            assert time.monotonic() < end, daemon.log_tail()
            time.sleep(0.2)
        waiting = client(other.comm_socket, "8", READER_0)
        assert json.loads(waiting.stdout.readline())["readers"] == [READER_0, READER_1]
        since = pcsc_events.mark()
        VirtualCard(UID, port=other.ports[READER_0]).tap(1.5)
        out, err = waiting.communicate(timeout=15)
        assert json.loads(out) == {"uid": UID.hex(), "sw": "9000"}, err
        assert not [e for e in pcsc_events.events[since:] if isinstance(e, CardPresented)]
        assert pcsc.running and readers_via(pcsc.comm_socket) == [READER_0, READER_1]
    finally:
        daemon.stop()
        leftovers = sorted(p.name for p in other.run_dir.iterdir())
        shutil.rmtree(other.run_dir)
    assert leftovers == []  # SIGTERM: pcscd removed its socket and pid file
