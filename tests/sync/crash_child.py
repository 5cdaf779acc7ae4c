"""Child process of the crash test: import one bundle, slowly, announcing each step.

Usage: python crash_child.py DATA_DIR BUNDLE PAUSE_SECONDS. The gate's real face
vault receives the bundle's templates (as `doorpi sync import` wires it). Prints "begin",
"step" before every statement group, "done <result>" at the end, flushing
each line, so the parent knows where its SIGKILL landed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doorpi.store import Storage
from doorpi.sync.importer import BundleImporter
from doorpi.sync.keys import GateIdentity
from sync.helpers import RULES, make_privacy, real_sink


def main() -> None:
    data_dir, bundle, pause = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    storage = Storage.open(data_dir)
    identity = GateIdentity.load(data_dir / "keys")
    sink = real_sink(make_privacy(storage, data_dir, time.time), identity)
    importer = BundleImporter(storage, identity, RULES, sink)

    def step() -> None:
        print("step", flush=True)
        time.sleep(pause)

    importer._step = step  # type: ignore[method-assign]
    print("begin", flush=True)
    report = importer.import_file(bundle)
    print("done", report.result, report.reason, flush=True)


if __name__ == "__main__":
    main()
