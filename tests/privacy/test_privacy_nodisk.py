"""No image or embedding on disk (law notes C13): run enrolment and recognition
with the real face pipeline (models from `make models`, the project's photos)
in a separate process, then look for image files and embedding bytes in the
data directory, the temp directories and the process's log output. An audit
hook in that process also records every file it opens for writing while
faces are processed: there must be none outside the database's own files.
(A subprocess, because a Python audit hook cannot be removed once added.)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"RIFF", b"\x93NUMPY")

DRIVER = r"""
import json, logging, os, sys, threading
from pathlib import Path
writes, recording = [], threading.Event()
def hook(event, args):
    if not recording.is_set():
        return
    if event == "open":
        path, mode, flags = args
        w = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if w and path is not None:
            writes.append(str(path))
    elif event in ("os.rename", "os.replace", "shutil.copyfile", "tempfile.mkstemp",
                   "tempfile.mkdtemp"):
        writes.append(f"{event}:{args[0]}")
sys.addaudithook(hook)
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)

import numpy as np
from doorpi.hardware.camera import load_rgb
from doorpi.privacy.enrolment import FacePrivacy, SiteIdentity
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.privacy.retention import RetentionSweeper
from doorpi.privacy.settings import PrivacySettings
from doorpi.privacy.vault import TemplateVault
from doorpi.store import Storage
from doorpi.vision.models import REPO_BUILD_DIR, SUMS, load_models
from doorpi.vision.pipeline import FacePipeline

data_dir, shared = Path(sys.argv[1]), Path(sys.argv[2])
models = Path(os.environ.get("DOORPI_MODELS_DIR") or REPO_BUILD_DIR)
if not (models / SUMS).is_file():
    sys.exit(f"face models not found in {models}: run make models")
pipeline = FacePipeline(load_models(models, num_threads=2))
store = Storage.open(data_dir)
vault = TemplateVault(store.db, data_dir / "keys", store.audit)
AssessmentRegistry(store.db, store.audit).record(ImpactAssessment(
    purpose="Open the gate for residents who choose face entry.",
    necessity="Convenience; card and PIN stay available at every door.",
    impact="Leak or misuse of templates; false accepts.",
    measures="Consent, encrypted on-device templates, retention, audit.",
    author="test", created=1.0e9))
privacy = FacePrivacy(store, vault, PrivacySettings(), SiteIdentity("S", "Ctrl Co.", "+86 10 5555 0100"))
alice = store.residents.add("Alice", 1.0e9).id

def embeddings(person, want):
    out = []
    for p in sorted((shared / "faces" / person).glob("*.jpg")):
        res = pipeline.process(load_rgb(p, max_side=1280))
        if res.ok:
            out.append(res.embedding)
        if len(out) == want:
            return out
    sys.exit(f"fewer than {want} usable photos of {person}")

recording.set()
a1, a2 = embeddings("Barack_Obama", 2)
(b1,) = embeddings("Ben_Affleck", 1)
ticket = privacy.start_enrolment(alice, "admin_present", by="admin:test")
privacy.consent(ticket, confirmed_by="admin:test")
privacy.enrol(alice, a1)
same = privacy.identify(a2, threshold=0.45)
other = privacy.identify(b1, threshold=0.45)
RetentionSweeper(store, vault).sweep()
recording.clear()
transformed = [vault._transform.apply(e).tobytes().hex() for e in (a1, a2, b1)]
store.close()
print(json.dumps({"writes": writes, "same": same, "other": other, "alice": alice,
                  "embeddings": [np.asarray(e, np.float32).tobytes().hex() for e in (a1, a2, b1)],
                  "transformed": transformed}))
"""


def _temp_dirs() -> list[Path]:
    dirs = {Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")}
    return [d for d in dirs if d.is_dir()]


def _snapshot(dirs: list[Path]) -> dict[Path, float]:
    snap: dict[Path, float] = {}
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in files:
                p = Path(root) / f
                with contextlib.suppress(OSError):
                    snap[p] = p.stat().st_mtime
    return snap


def test_enrolment_and_recognition_leave_no_image_or_embedding_anywhere(tmp_path, faces_dir):
    data_dir = tmp_path / "data"
    before = _snapshot(_temp_dirs())
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(data_dir), str(faces_dir.parent)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["same"] == out["alice"]  # the same person, another photo: recognised
    assert out["other"] is None  # somebody else: not
    embs = [np.frombuffer(bytes.fromhex(h), np.float32) for h in out["embeddings"]]
    needles = []
    for e, t in zip(embs, out["transformed"], strict=True):
        needles += [e.tobytes(), e.tobytes()[:64], e.astype(np.float64).tobytes()[:128],
                    bytes.fromhex(t)[:64]]  # fmt: skip

    # 1. Nothing opened for writing except the database's own files.
    db_files = {str(data_dir / n) for n in ("doorpi.db", "doorpi.db-wal", "doorpi.db-shm")}
    assert [w for w in out["writes"] if w not in db_files] == []

    # 2. The data directory: no image file, no embedding bytes (raw or transformed).
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "doorpi.db" for p in files)
    for p in files:
        blob = p.read_bytes()
        assert not blob.startswith(IMAGE_MAGIC), p
        assert not any(n in blob for n in needles), p

    # 3. Temp directories: no new or changed file carries an embedding.
    after = _snapshot(_temp_dirs())
    changed = [p for p, m in after.items() if before.get(p) != m and data_dir not in p.parents]
    for p in changed:
        if not p.is_file():  # a FIFO another process left in /tmp would block the read
            continue
        with contextlib.suppress(OSError):
            blob = p.read_bytes()
            assert not any(n in blob for n in needles), p

    # 4. Logs: the process's DEBUG log output carries no embedding values.
    log = proc.stderr
    for e in embs:
        assert e.tobytes().hex()[:24] not in log
        assert not all(f"{float(v):.4f}" in log for v in e[:4])


def test_the_write_witness_is_not_blind(tmp_path):
    """The same hook catches a leak: a process that saves an embedding to /tmp."""
    leak = tmp_path / "leak.npy"
    code = DRIVER.split("logging.basicConfig")[0] + (
        "recording.set()\nimport numpy as np\n"
        f"np.save({str(leak)!r}, np.ones(128, np.float32))\nprint(json.dumps(writes))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(proc.stdout) == [str(leak)]
