"""`doorpi bench core`: the numbers that matter for the card/PIN gate.

* card event -> relay command, through the real gate thread and queue
  (simulated reader and MockFactory pins; reader polling excluded);
* fire input edge -> strike released, on MockFactory pins, while the gate is
  loaded (a busy face path and card taps, 10 events/s, each costing the gate
  thread ``handle_cost`` seconds), in gate loops and milliseconds;
* PIN verification time at the configured Argon2id cost;
* time from process start to READY=1, and resident memory once idle, for the
  real `doorpi run --sim` process.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def card_to_relay(n: int = 200) -> dict[str, float]:
    from doorpi.clocks import SystemClock
    from doorpi.sim.site import SimulatedSite, sim_config

    tmp = Path(tempfile.mkdtemp(prefix="doorpi-bench-"))
    # No settle time for the door contact here: the card -> relay path does not
    # include it, and with it a tap 20 ms after the close found the door still open
    # and waited out the 5 s unlock (200 samples took over 15 minutes).
    site = SimulatedSite(sim_config({"gpio": {"settle_seconds": 0}}, tmp), SystemClock())
    site.add_resident({"name": "Bench", "cards": ["04a1b2c3d4e5f6"]})
    released = threading.Event()
    locked = threading.Event()
    strike = site.devices.strike
    t_release: list[float] = []
    orig_release, orig_secure = strike.release, strike.secure

    def release() -> None:
        orig_release()
        t_release.append(time.perf_counter())
        released.set()

    def secure() -> None:
        orig_secure()
        locked.set()

    strike.release, strike.secure = release, secure  # type: ignore[method-assign]
    stop = threading.Event()
    loop = threading.Thread(target=site.gate.run, args=(stop,), daemon=True)
    loop.start()
    samples: list[float] = []
    door = site.factory.pin(site.cfg.gpio.door_contact)
    try:
        for _ in range(n):
            released.clear()
            locked.clear()
            t0 = time.perf_counter()
            site.devices.reader.present(bytes.fromhex("04a1b2c3d4e5f6"))
            if not released.wait(5):
                raise RuntimeError("no relay command within 5 s")
            samples.append((t_release[-1] - t0) * 1000)
            door.drive_high()  # walks through: the strike relocks on open
            if not locked.wait(5):
                raise RuntimeError("the strike did not relock within 5 s of the door opening")
            door.drive_low()
            # The door is closed once the contact has settled (gpio.settle_seconds);
            # opening it again sooner would be chatter, not a new opening.
            time.sleep(site.cfg.gpio.settle_seconds + 0.05)
    finally:
        stop.set()
        loop.join(timeout=2)
        site.close()
    return {
        "samples": n,
        "median_ms": round(statistics.median(samples), 3),
        "p99_ms": round(_pct(samples, 0.99), 3),
        "max_ms": round(max(samples), 3),
    }


def fire_release_under_load(
    n: int = 8, rate_hz: float = 10.0, handle_cost: float = 0.0, data_dir: Path | None = None
) -> dict[str, Any]:
    """Drive the fire input (MockFactory pin) ``n`` times while a load thread
    submits face-path results and unknown card taps at ``rate_hz``; each
    loaded event costs the gate thread ``handle_cost`` s (a backlog builds
    when that exceeds 1/rate). Per alarm: milliseconds from the pin edge to
    the strike's release, and ``loops``: gate loops that ran after the edge up
    to the one that released (1 = the next loop). ``strike_states``: the
    strike pin's history (True = energised)."""
    from doorpi.clocks import SystemClock
    from doorpi.core.events import CardPresented, FaceHint, FaceRejected, FireAlarmChanged
    from doorpi.sim.site import SimulatedSite, sim_config

    tmp = data_dir or Path(tempfile.mkdtemp(prefix="doorpi-bench-"))
    site = SimulatedSite(sim_config({"gpio": {"fire_alarm": 9}}, tmp), SystemClock())
    gate = site.gate
    calls: list[tuple[float, bool]] = []  # (start of the loop, fire event handled)
    orig_handle = gate.handle

    def handle(event: Any) -> None:
        t0 = time.perf_counter()
        if handle_cost and isinstance(event, FaceRejected | CardPresented):
            time.sleep(handle_cost)  # the loaded gate's work on this event
        orig_handle(event)
        calls.append((t0, isinstance(event, FireAlarmChanged)))

    gate.handle = handle  # type: ignore[method-assign]
    released = threading.Event()
    t_release: list[float] = []
    strike = site.devices.strike
    orig_release = strike.release

    def release() -> None:
        orig_release()
        t_release.append(time.perf_counter())
        released.set()

    strike.release = release  # type: ignore[method-assign]
    stop = threading.Event()
    loop = threading.Thread(target=gate.run, args=(stop,), daemon=True)
    load_stop = threading.Event()

    def load() -> None:
        i = 0
        while not load_stop.wait(1.0 / rate_hz):
            i += 1
            if i % 3 == 0:
                gate.submit(CardPresented(bytes.fromhex(f"04{i:012x}"), "bench"))
            else:
                gate.submit(FaceRejected("no_match") if i % 3 == 1 else FaceHint("too_far"))

    loader = threading.Thread(target=load, daemon=True)
    loop.start()
    loader.start()
    fire_pin = site.factory.pin(site.cfg.gpio.fire_alarm)
    samples: list[float] = []
    loops: list[int] = []
    backlog: list[int] = []
    try:
        site.strike_pin.clear_states()
        for _ in range(n):
            time.sleep(0.3)  # let the load build up
            released.clear()
            backlog.append(gate.queue.qsize())
            t0 = time.perf_counter()
            fire_pin.drive_high()  # NC contact opens: alarm
            if not released.wait(10):
                raise RuntimeError("strike not released within 10 s of the fire input")
            samples.append((t_release[-1] - t0) * 1000)
            time.sleep(0.1)  # the releasing loop has returned: count the loops
            after = [fire for start, fire in list(calls) if start >= t0]
            loops.append(after.index(True) + 1 if True in after else 0)
            fire_pin.drive_low()  # back to normal: clears after the settle time
            deadline = time.monotonic() + 5
            while site.devices.strike.released and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        load_stop.set()
        loader.join(timeout=2)
        stop.set()
        loop.join(timeout=5)
        states = [bool(s.state) for s in site.strike_pin.states]
        site.close()
    return {
        "samples": n,
        "rate_hz": rate_hz,
        "handle_cost_ms": round(handle_cost * 1000, 1),
        "median_ms": round(statistics.median(samples), 3),
        "p99_ms": round(_pct(samples, 0.99), 3),
        "max_ms": round(max(samples), 3),
        "max_loops": max(loops),
        "loops": loops,
        "max_backlog": max(backlog),
        "strike_states": states,
    }


def pin_verify(opslimit: int, memlimit_kib: int, n: int = 10) -> dict[str, float]:
    from doorpi.store.credentials import hash_pin, verify_pin
    from doorpi.store.secrets import DeviceSecrets

    secrets = DeviceSecrets(os.urandom(32))
    h = hash_pin(secrets, "2468", opslimit, memlimit_kib)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        verify_pin(secrets, h, "2468" if i % 2 else "1357")
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "opslimit": opslimit,
        "memlimit_kib": memlimit_kib,
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
    }


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def process_startup(runs: int = 3) -> dict[str, Any]:
    """Start `doorpi run --sim` for real; time to READY=1 and idle RSS."""
    times, rss = [], []
    for _ in range(runs):
        tmp = Path(tempfile.mkdtemp(prefix="doorpi-bench-"))
        cfg = tmp / "doorpi.toml"
        cfg.write_text(f'[site]\ndata_dir = "{tmp / "data"}"\n[keypad]\nkind = "none"\n')
        sock_path = str(tmp / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(30)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "doorpi", "--config", str(cfg), "run", "--sim"],
            env={**os.environ, "NOTIFY_SOCKET": sock_path},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            times.append((time.perf_counter() - t0) * 1000)
            time.sleep(1.0)
            rss.append(_rss_kib(proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            sock.close()
    return {
        "startup_to_ready_ms": round(statistics.median(times), 1),
        "idle_rss_mib": round(statistics.median(rss) / 1024, 1),
    }


def secure_card_tap(n: int = 200) -> dict[str, Any]:
    """Our own work for one secure-card tap (doorpi.cards.policy.CardPolicyProtocol):
    select, AuthenticateEV2First with the UID-read key, GetCardUID (Full mode),
    AuthenticateEV2First with the card's entry key, against the in-process card
    emulator. The reader's radio round trips (6 APDUs) are not included: they
    depend on the reader (roughly 5-20 ms each on a USB PC/SC reader; 6 per tap).

    ``ops`` counts the reader-side AES calls per tap (CBC and CMAC), the basis
    for the Pi 4 estimate in docs/entry.md (a Cortex-A72 has no AES instructions).
    """
    from doorpi.cards import crypto
    from doorpi.cards.keys import GateCardKeys, SiteCardKeys
    from doorpi.cards.policy import CardPolicyProtocol, LegacyWindow
    from doorpi.sim.ev2_card import Ev2CardApp

    site = SiteCardKeys(os.urandom(16))
    uid = bytes.fromhex("04112233445566")
    card = Ev2CardApp.issued(site, uid, random_uid=True)
    policy = CardPolicyProtocol(GateCardKeys.for_cards(site, [uid]), LegacyWindow())
    card_ms: list[float] = []

    def transmit(apdu: list[int]) -> tuple[list[int], int, int]:
        t = time.perf_counter()
        resp = card(bytes(apdu))
        card_ms.append((time.perf_counter() - t) * 1000)
        return list(resp[:-2]), resp[-2], resp[-1]

    counts = {"cbc": 0, "cmac": 0}
    names = {"aes_cbc_encrypt": "cbc", "aes_cbc_decrypt": "cbc", "aes_cmac": "cmac"}
    originals = {name: getattr(crypto, name) for name in names}

    def counting(name: str) -> Any:
        def f(*a: Any, **k: Any) -> Any:
            counts[names[name]] += 1
            return originals[name](*a, **k)

        return f

    for name in names:
        setattr(crypto, name, counting(name))
    try:
        card_ms.clear()
        assert policy.identify(transmit) == uid
        card_calls = dict(counts)  # card side included; recount for the reader alone below
    finally:
        for name, f in originals.items():
            setattr(crypto, name, f)
    total: list[float] = []
    own: list[float] = []
    for _ in range(n):
        card.power_cycle()
        card_ms.clear()
        t = time.perf_counter()
        policy.identify(transmit)
        ms = (time.perf_counter() - t) * 1000
        total.append(ms)
        own.append(ms - sum(card_ms))
    return {
        "reader_side_ms_median": round(statistics.median(own), 3),
        "reader_side_ms_p99": round(_pct(own, 0.99), 3),
        "with_card_emulator_ms_median": round(statistics.median(total), 3),
        "apdus": 6,
        "aes_calls_both_sides": card_calls,
        "samples": n,
    }


def bench_core(opslimit: int, memlimit_kib: int) -> dict[str, Any]:
    import platform

    return {
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "card_to_relay": card_to_relay(),
        "fire_to_release": {
            k: v
            for k, v in fire_release_under_load(handle_cost=0.2).items()
            if k not in ("loops", "strike_states")
        },
        "secure_card_tap": secure_card_tap(),
        "pin_verify": pin_verify(opslimit, memlimit_kib),
        "process": process_startup(),
    }
