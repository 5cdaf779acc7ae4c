"""One life of the gate for the restart test: start, maybe tap, then end as told.

Usage: ``python restart_child.py DATA_DIR END TAP`` with END one of clean, kill
(SIGKILL to itself), abort (SIGABRT, systemd's watchdog signal), exit (os._exit, no
cleanup), hang (prints "hung" and waits to be killed, a wedged loop the watchdog ends)
and TAP one of none, known, unknown. Prints "grant" when the strike was released by a
tap. The gate is built as `doorpi run --sim` builds it; mock pins are recorded to
$DOORPI_PIN_LOG.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from doorpi.clocks import ManualClock
from doorpi.sim.site import SimulatedSite, sim_config

CARD = "04a1b2c3d4e5f6"


def main() -> None:
    data, end, tap = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    site = SimulatedSite(sim_config({"door": {"unlock_seconds": 60.0}}, data),
                         ManualClock(1_772_442_000.0 + time.time() % 1000))  # fmt: skip
    if not site.storage.residents.all():
        site.add_resident({"name": "A", "cards": [CARD]})
    print("started", flush=True)
    if tap != "none":
        site.card(CARD if tap == "known" else "04ffffffffff01")
        if site.strike_pin.state:
            print("grant", flush=True)
    if end == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif end == "abort":
        os.kill(os.getpid(), signal.SIGABRT)
    elif end == "exit":
        os._exit(1)
    elif end == "hang":
        print("hung", flush=True)
        while True:
            time.sleep(60)
    site.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
