#!/bin/sh
# `make reliability`: the long forms of tests/reliability (power cuts, restarts, fuzzers,
# soak), then a summary in build/reliability/summary.json and summary.md
# (docs/reliability.md is written from it). Needs root (loop devices, mount, FUSE).
set -eu
OUT="${1:-build/reliability}"
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)
status=0
# pytest's own exit status (a pipeline's is tee's: POSIX sh has no pipefail).
{ DOORPI_RELIABILITY="${DOORPI_RELIABILITY:-long}" DOORPI_RELIABILITY_OUT="$OUT" \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/reliability 2>&1
  echo $? > "$OUT/pytest.rc"; } | tee "$OUT/pytest.log"
[ "$(cat "$OUT/pytest.rc")" = 0 ] || status=1
rm -f "$OUT/pytest.rc"
end=$(date +%s)
.venv/bin/python - "$OUT" "$((end - start))" "$status" <<'PY'
import json, sys
from pathlib import Path
out, seconds, status = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
parts = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.stem != "summary"}
form = next((d.get("form") for d in parts.values()), "?")
summary = {"form": form, "seconds": seconds, "passed": status == 0, **parts}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
lines = [f"# make reliability ({form} form): {'passed' if status == 0 else 'FAILED'} in {seconds} s", ""]
for name, data in parts.items():
    lines += [f"## {name}", ""] + [f"- {k}: {v}" for k, v in data.items()] + [""]
(out / "summary.md").write_text("\n".join(lines))
print("\n".join(lines))
PY
exit "$status"
