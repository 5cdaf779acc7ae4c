#!/bin/sh
# `make reliability`: the long forms of tests/reliability (power cuts, restarts, fuzzers,
# soak), then a summary in build/reliability/summary.json and summary.md
# (docs/reliability.md is written from it: tools/reliability_doc.py store SUMMARY).
# Needs root (loop devices, mount; the power cuts boot a qemu guest, dmvm.py). DOORPI_RELIABILITY_TESTS picks tests (default
# all of tests/reliability), e.g. to re-run one part on newer code.
set -eu
OUT="${1:-build/reliability}"
# test_reliability_doc.py checks the stored output of a run like this one: not a part.
TESTS="${DOORPI_RELIABILITY_TESTS:-tests/reliability --ignore=tests/reliability/test_reliability_doc.py}"
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(cut -d' ' -f1 /proc/loadavg)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src tests 2>/dev/null || commit="$commit+changes"
machine="$(nproc) CPUs, $(uname -m), kernel $(uname -r), $(awk '/MemTotal/ {printf "%d MiB", $2/1024}' /proc/meminfo)"
status=0
# pytest's own exit status (a pipeline's is tee's: POSIX sh has no pipefail).
{ DOORPI_RELIABILITY="${DOORPI_RELIABILITY:-long}" DOORPI_RELIABILITY_OUT="$OUT" \
  .venv/bin/python -m pytest -q -p no:cacheprovider $TESTS 2>&1
  echo $? > "$OUT/pytest.rc"; } | tee "$OUT/pytest.log"
[ "$(cat "$OUT/pytest.rc")" = 0 ] || status=1
rm -f "$OUT/pytest.rc"
end=$(date +%s)
load_end=$(cut -d' ' -f1 /proc/loadavg)
.venv/bin/python - "$OUT" "$((end - start))" "$status" "$commit" "$machine" "$load_start" "$load_end" "$started" <<'PY'
import json, sys
from pathlib import Path
out, seconds, status = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
commit, machine, load_start, load_end, started = sys.argv[4:9]
parts = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.stem != "summary"}
form = next((d.get("form") for d in parts.values()), "?")
run = {"commit": commit, "machine": machine, "load_start": float(load_start),
       "load_end": float(load_end), "started": started}
log = (out / "pytest.log").read_text(errors="replace").splitlines()
failed = [line.split(" - ")[0] for line in log if line.startswith(("FAILED ", "ERROR "))]
summary = {"form": form, "seconds": seconds, "passed": status == 0, "failed_tests": failed,
           **run, **parts}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
lines = [f"# make reliability ({form} form): {'passed' if status == 0 else 'FAILED'} in {seconds} s", ""]
for name, data in parts.items():
    lines += [f"## {name}", ""] + [f"- {k}: {v}" for k, v in data.items()] + [""]
(out / "summary.md").write_text("\n".join(lines))
print("\n".join(lines))
PY
exit "$status"
