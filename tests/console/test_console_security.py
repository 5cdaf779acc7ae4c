"""The console refuses what did not come from the admin's own browser tab: no token,
a wrong token, a POST without the CSRF token, a foreign Host or Origin; it listens on
127.0.0.1 only; and the gate's process never imports it."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from pathlib import Path


def _request(c, method: str, path: str, body: str = "", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    conn.request(method, path, body=body.encode(), headers=hdrs)
    resp = conn.getresponse()
    data = resp.read().decode()
    conn.close()
    return resp, data


def _session(c) -> tuple[str, str]:
    resp, _ = _request(c, "GET", f"/login?token={c.token}")
    assert resp.status == 303
    cookie = resp.getheader("Set-Cookie").split(";")[0]
    assert "HttpOnly" in resp.getheader("Set-Cookie") and "SameSite=Strict" in resp.getheader(
        "Set-Cookie"
    )
    _, page = _request(c, "GET", "/", headers={"Cookie": cookie})
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    return cookie, csrf


def test_token_csrf_host_and_origin_are_checked(console_factory, tmp_path: Path):
    c = console_factory("en")
    resp, page = _request(c, "GET", "/")
    assert resp.status == 403 and "Refused" in page  # no token
    resp, _ = _request(c, "GET", "/login?token=" + "x" * len(c.token))
    assert resp.status == 403 and resp.getheader("Set-Cookie") is None  # wrong token
    wrong = c.token[:-1] + ("B" if c.token.endswith("A") else "A")  # 1 in 64 tokens end in A
    resp, _ = _request(c, "GET", "/", headers={"Cookie": "doorpi_desk=" + wrong})
    assert resp.status == 403
    cookie, csrf = _session(c)
    resp, _ = _request(c, "GET", "/", headers={"Cookie": cookie, "Host": f"evil.example:{c.port}"})
    assert resp.status == 403  # DNS rebinding: a foreign name for this address
    form = "site_name=Sunny+Garden"
    resp, page = _request(c, "POST", "/init", form, {"Cookie": cookie})
    assert resp.status == 403 and "CSRF" in page  # no CSRF token
    resp, _ = _request(c, "POST", "/init", form + "&csrf=" + "0" * 64, {"Cookie": cookie})
    assert resp.status == 403
    resp, _ = _request(c, "POST", "/init", f"{form}&csrf={csrf}",
                       {"Cookie": cookie, "Origin": "http://evil.example"})  # fmt: skip
    assert resp.status == 403
    assert not (tmp_path / "admin" / "state.json").exists()  # nothing was done
    resp, _ = _request(c, "POST", "/init", f"{form}&csrf={csrf}",
                       {"Cookie": cookie, "Origin": c.base})  # fmt: skip
    assert resp.status == 303 and (tmp_path / "admin" / "state.json").exists()
    resp, page = _request(c, "GET", "/", headers={"Cookie": cookie})
    assert resp.status == 200 and "default-src 'none'" in resp.getheader("Content-Security-Policy")
    assert "http://" not in page.replace(c.base, "") and "https://" not in page  # no outside assets
    assert "<script" not in page


def test_listens_on_127_0_0_1_only(console_factory):
    c = console_factory("zh")
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == c.port:
                listening.append((table, local.rsplit(":", 1)[0]))
    assert listening == [("/proc/net/tcp", "0100007F")], listening  # 127.0.0.1, no IPv6, no 0.0.0.0


GATE = r"""
import sys
from doorpi.cli import build_parser, main
build_parser()  # every command module, `admin` included, as the gate's CLI loads them
import doorpi.gate
rc = main(["demo", "--scenario", sys.argv[1], "--check"])
bad = sorted(m for m in sys.modules if m.startswith("doorpi.console") or m in ("http.server", "socketserver", "webbrowser"))
print(rc, bad)
"""


def test_the_gate_process_never_imports_the_console():
    scenario = sorted(
        (Path(__file__).resolve().parents[2] / "examples" / "scenarios").glob("*.toml")
    )[0]
    proc = subprocess.run([sys.executable, "-c", GATE, str(scenario)], capture_output=True,
                          text=True, timeout=120, env={"DOORPI_CONFIG": "/nonexistent", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr
