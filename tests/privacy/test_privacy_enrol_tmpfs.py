"""No frame of a real gate enrolment reaches a file (law notes C13, issue #14:
"enrolment writing frames to /tmp passes").

The enrolment runs in a child process inside its own mount namespace where
/tmp, /var/tmp and /dev/shm are fresh, empty tmpfs mounts: every file that
exists there afterwards was written during the run, by Python or by native
code (an audit hook sees only Python's opens). The run is the gate's own path:
'#', the card, PIN, 7 #, 1 #, then camera frames of a real photo into the
gate's face path, then a 1:1 at a card+face door. Afterwards the child lists
every file on those mounts and in its working directory; only the gate's data
directory may exist there, and none of its files may hold an image, the
frame's pixels or the embedding.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMP_MOUNTS = ("/tmp", "/var/tmp", "/dev/shm")
WORK = "/tmp/work"  # face_site puts the gate's data dir in WORK/data, on the fresh /tmp
DATA = WORK + "/data"
CWD = "/var/tmp/cwd"

#: The host's tree, seen again inside the namespace under this path (a tmpfs over
#: /mnt holds it): a checkout, venv or photo folder under /tmp stays reachable once
#: /tmp is an empty tmpfs, and the listing (temp dirs only) does not walk it.
HOST = "/mnt/doorpi-host"

#: Run inside the namespace: the host tree kept under HOST, every temp directory
#: an empty tmpfs, then Python.
WRAP = (
    "set -e; "
    + f"mount -t tmpfs doorpi-host /mnt; mkdir {HOST}; mount --rbind / {HOST}; "
    + f"mount --make-rprivate {HOST}; "
    + " ".join(f"mount -t tmpfs doorpi-probe {d};" for d in TEMP_MOUNTS)
    + (f' mkdir -p {CWD}; cd {CWD}; exec "$0" -c "$@"')
)

LISTING = r"""
def listing():
    found = []
    for top in ("/tmp", "/var/tmp", "/dev/shm"):
        for root, dirs, files in os.walk(top):
            found += [os.path.join(root, f) for f in files]
    return sorted(found)
"""

DRIVER = (
    r"""
import json, os, sys
sys.path[:0] = [sys.argv[2], os.path.dirname(sys.argv[2])]  # privacy_support, site_support
from pathlib import Path
"""
    + LISTING
    + r"""
import numpy as np
from privacy_support import ALICE, FACE_ON, face_site
from doorpi.hardware.camera import Frame, load_rgb

faces = Path(sys.argv[1])
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"RIFF", b"\x93NUMPY",
         b"P6\n", b"II*\x00", b"MM\x00*")
before = listing()
site = face_site(Path(sys.argv[3]), {**FACE_ON, "door": {"access": ["card+face", "card+pin"]}})
site.key("#")
site.card(ALICE["cards"][0])
for k in ALICE["pin"] + "#7#1#":
    site.key(k)
rgb = load_rgb(faces / "Barack_Obama" / "1.jpg", max_side=640)
site.face([Frame(rgb, luma=rgb[:, :, 1])] * 4)
enrolled = site.gate.face_privacy.vault.count()
site.advance(6)
site.card(ALICE["cards"][0])
other = load_rgb(faces / "Barack_Obama" / "2.jpg", max_side=640)
site.face([Frame(other, luma=other[:, :, 1])] * 2)
granted = [e["factors"] for e in site.events if e["event"] == "access" and e["granted"]]
emb = site.gate.face_privacy.vault.embedding(site.gate.storage.residents.get(site.rid).pseudonym)
site.close()
# What the files hold: an image, a row of the frame's pixels, the raw embedding.
needles = [rgb[r].tobytes() for r in (100, 200, 300)]
needles.append(np.asarray(emb, np.float32).tobytes()[:64])
hits = {}
for p in listing():
    blob = open(p, "rb").read()
    found = [f"needle {i}" for i, n in enumerate(needles) if n in blob]
    found += [f"image {m!r}" for m in MAGIC if blob.startswith(m)]
    if found:
        hits[p] = found
print(json.dumps({"before": before, "after": listing(), "cwd": sorted(os.listdir(".")),
                  "enrolled": enrolled, "granted": granted, "hits": hits}))
"""
)


def host(path: str) -> str:
    """A host path as the namespace reaches it (under HOST; the venv's own path, not
    its target, so Python still finds its pyvenv.cfg)."""
    return HOST + os.path.abspath(path)


def in_namespace(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -c code args`` with fresh tmpfs temp dirs (root: unshare, mount)."""
    for tool in ("unshare", "mount"):
        assert shutil.which(tool), f"{tool} not found: this test needs util-linux (root)"
    assert os.geteuid() == 0, "this test needs root for a private mount namespace"
    cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", WRAP,
           host(sys.executable), code, *args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": host(str(REPO / "src"))}
    for var in ("DOORPI_MODELS_DIR", "XDG_CACHE_HOME"):
        if env.get(var):
            env[var] = host(env[var])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_a_real_gate_enrolment_writes_no_file_outside_its_database(faces_dir):
    proc = in_namespace(DRIVER, host(str(Path(faces_dir).resolve())),
                        host(str(REPO / "tests" / "privacy")), WORK)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["enrolled"] == 1 and out["granted"][-1] == ["card", "face"]  # it really ran
    assert out["before"] == [] and out["cwd"] == []
    strays = [p for p in out["after"] if not p.startswith(DATA + "/")]
    assert strays == [], f"files written during enrolment: {strays}"
    assert any(p.endswith("/doorpi.db") for p in out["after"])  # the listing sees the store
    assert out["hits"] == {}  # no image, frame pixels or raw embedding in any file


def test_the_namespace_witness_sees_native_and_python_writes():
    """Not blind: a frame saved by PIL, and bytes written by a native program
    (cp), both show up in the listing; the host's /tmp never sees them."""
    code = (
        "import json, os, subprocess, sys\n" + LISTING + "from PIL import Image\n"
        "import numpy as np\n"
        "Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save('/tmp/frame.png')\n"
        "subprocess.run(['cp', '/tmp/frame.png', '/dev/shm/copy'], check=True)\n"
        "open('/var/tmp/cwd/x', 'w').write('x')\n"
        "print(json.dumps(listing()))\n"
    )
    proc = in_namespace(code, "-", "-", "-")
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == ["/dev/shm/copy", "/tmp/frame.png", "/var/tmp/cwd/x"]
    assert not Path("/tmp/frame.png").exists() and not Path("/dev/shm/copy").exists()
