"""Nothing leaves the box (law notes E19): during a full demo run (the
interactive demo driven through stdin, then every shipped scenario) the
process opens no network socket. Two independent witnesses: ``strace`` sees
every socket(2)/connect(2)/bind(2) of the process and its threads, including
those made by C libraries; a Python audit hook sees every socket the Python
code creates. Only local AF_UNIX sockets to pcscd and systemd are allowed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((REPO / "examples" / "scenarios").glob("*.toml"))
ALLOWED_UNIX = ("/run/pcscd/pcscd.comm", "/run/systemd/notify", "/run/systemd/journal/", "/dev/log")
ALLOWED_UNIX += tuple(filter(None, [os.environ.get("PCSCLITE_CSOCK_NAME")]))  # the session's pcscd

DRIVER = r"""
import json, os, sys
events = []
def hook(event, args):
    if event.startswith("socket."):
        events.append([event, repr(args)[:200]])
sys.addaudithook(hook)
import io
from doorpi.cli import main
rc = []
sys.stdin = io.StringIO("card 04a1b2c3d4e5f6\nkeys 101#2468#\nopen\nclose\nrex\n"
                        "card 04ffffffffffff\nkeys 202#0000#\ntamper on\ntamper off\nstatus\nquit\n")
rc.append(main(["demo"]))
for path in sys.argv[2:]:
    rc.append(main(["demo", "--scenario", path, "--check"]))
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "events": events}, f)
"""


def test_full_demo_run_opens_no_network_socket(tmp_path):
    strace = shutil.which("strace")
    assert strace, "strace is needed for this test: apt-get install -y strace"
    trace = tmp_path / "strace.txt"
    report = tmp_path / "hook.json"
    env = {**os.environ, "NOTIFY_SOCKET": "/run/systemd/notify", "DOORPI_CONFIG": "/nonexistent"}
    proc = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=socket,connect,bind,sendto,sendmsg", "-o", str(trace),
         sys.executable, "-c", DRIVER, str(report), *map(str, SCENARIOS)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(report.read_text())
    assert result["rc"] == [0] * (1 + len(SCENARIOS))  # the demo and every scenario ran
    assert '"event":"access","granted":true' in proc.stdout  # the demo really let Alice in

    calls = trace.read_text().splitlines()
    sockets = [c for c in calls if re.search(r"\bsocket\(", c)]
    bad = [c for c in sockets if "AF_UNIX" not in c and "AF_LOCAL" not in c]
    assert bad == [], bad
    for c in calls:
        if re.search(r"\b(connect|bind|sendto|sendmsg)\(", c):
            assert "AF_INET" not in c and "AF_INET6" not in c and "AF_NETLINK" not in c, c
            m = re.search(r'sun_path="([^"]*)"', c)
            if m:
                assert m.group(1).startswith(ALLOWED_UNIX), c

    py_sockets = [e for e in result["events"] if e[0] == "socket.__new__"]
    for _, args in py_sockets:
        assert "AddressFamily.AF_UNIX" in args or ", 1," in args, args
    assert not [
        e for e in result["events"] if e[0] in ("socket.getaddrinfo", "socket.gethostbyname")
    ]


def test_strace_witness_would_see_a_network_socket(tmp_path):
    """The check is not blind: a process that opens a TCP socket is caught."""
    trace = tmp_path / "strace.txt"
    code = "import socket; s = socket.socket(); s.close()"
    subprocess.run([shutil.which("strace") or "strace", "-f", "-qq", "-e", "trace=socket",
                    "-o", str(trace), sys.executable, "-c", code], check=True, timeout=60)  # fmt: skip
    assert "AF_INET" in trace.read_text()
