"""Write the image's lock files: its Python packages pinned to the versions this
checkout's test venv runs, each with the sha256 of the aarch64 wheel pip fetches.

    .venv/bin/python tools/image/lock.py     (make image-lock)

firmware_image/requirements.lock holds doorpi's runtime closure, and
requirements-face.lock what the `face` extra adds, requirements-tpm.lock what the
`tpm` extra adds (the TPM key root; tpm2-pytss as its source archive: SOURCE_BUILT).
build.sh and rootfs-test.sh
download and install exactly these with ``pip --require-hashes --no-deps``, so
the image gets the versions the tests ran and a changed file on PyPI fails the
build. Not pinned: what Raspberry Pi OS provides through --system-site-packages
(numpy, which python3-picamera2 is built against; pyscard; evdev), and pip's
own tools. Needs PyPI (pip download).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "firmware_image"
SYSTEM = {"numpy", "pyscard", "evdev", "pip", "setuptools", "wheel"}
# The image: Raspberry Pi OS bookworm, CPython 3.11 on aarch64.
TARGET = {"python_version": "3.11", "python_full_version": "3.11.2", "os_name": "posix",
          "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64",
          "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
# Where the image cannot run the test venv's version, and why. The tests run numpy 2;
# the image runs Raspberry Pi OS's numpy 1.24 (python3-picamera2 is built against
# it), so what requires numpy 2 is pinned to the newest release that accepts 1.24.
# rootfs-test.sh runs the real face pipeline on exactly these versions under qemu.
IMAGE_PINS = {
    "ml-dtypes": ("0.5.4", "0.6 requires numpy>=2; 0.5.4 takes numpy>=1.23.3 on Python 3.11"),
}
# No aarch64 wheel on PyPI: locked as the source archive's sha256, downloaded as it and
# built in the image against Raspberry Pi OS's C library (01-run-chroot.sh).
# (Debian's python3-tpm2-pytss 1.2.0 is older than the tests' and does not import beside
# the venv's cryptography: TypeError on RSAPrivateNumbers.)
SOURCE_BUILT = {
    "tpm2-pytss": "no aarch64 wheel on PyPI; the image builds it against libtss2 (libtss2-dev)",
}
PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, 37)]


def applies(marker: Marker | None, extra: str = "") -> bool:
    return marker is None or marker.evaluate({**TARGET, "extra": extra})


def closure(name: str, extras: tuple[str, ...] = ()) -> dict[str, str]:
    """Canonical name -> installed version of ``name`` and what it needs on the image."""
    out: dict[str, str] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(name, extras)]
    while todo:
        n, ex = todo.pop()
        dist = md.distribution(n)
        key = canonicalize_name(dist.metadata["Name"])
        if key in out:
            continue
        out[key] = dist.version
        for raw in dist.requires or []:
            req = Requirement(raw)
            if canonicalize_name(req.name) in SYSTEM:
                continue
            if any(applies(req.marker, e) for e in ("", *ex)):
                try:
                    md.distribution(req.name)
                except md.PackageNotFoundError:
                    sys.exit(f"lock: {req.name} (needed by {n}) is not in the test venv")
                todo.append((req.name, tuple(req.extras)))
    out.pop("doorpi", None)
    for name, (ver, _why) in IMAGE_PINS.items():
        if name in out:
            out[name] = ver
    return out


def lock(pins: dict[str, str], path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
               "--abi", "cp311", "--abi", "abi3", "--abi", "none", "--dest", tmp]  # fmt: skip
        for p in PLATFORMS:
            cmd += ["--platform", p]
        wheels = [f"{n}=={v}" for n, v in sorted(pins.items()) if n not in SOURCE_BUILT]
        sources = [f"{n}=={v}" for n, v in sorted(pins.items()) if n in SOURCE_BUILT]
        if wheels:
            subprocess.run(cmd + wheels, check=True)
        if sources:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--no-binary", ",".join(SOURCE_BUILT), "--dest", tmp, *sources],
                           check=True)  # fmt: skip
        hashes: dict[str, list[str]] = {}
        for whl in sorted(Path(tmp).iterdir()):
            if whl.suffix == ".whl":
                name = canonicalize_name(parse_wheel_filename(whl.name)[0])
            else:
                name = canonicalize_name(parse_sdist_filename(whl.name)[0])
            hashes.setdefault(name, []).append(hashlib.sha256(whl.read_bytes()).hexdigest())
    missing = set(pins) - set(hashes)
    if missing:
        sys.exit(f"lock: no aarch64 wheel downloaded for {', '.join(sorted(missing))}")
    lines = ["# Written by tools/image/lock.py from the test venv; do not edit.\n"]
    for name, why in sorted(SOURCE_BUILT.items()):
        if name in pins:
            lines.append(f"# {name}: source archive, {why}\n")
    for name, (ver, why) in sorted(IMAGE_PINS.items()):
        if name in pins:
            lines.append(f"# {name}=={ver}, not the tests' version: {why}\n")
    for n, v in sorted(pins.items()):
        lines.append(
            f"{n}=={v} \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in hashes[n]) + "\n"
        )
    path.write_text("".join(lines))
    print(f"{path.relative_to(REPO)}: {len(pins)} packages")


def main() -> None:
    base = closure("doorpi")
    face = {k: v for k, v in closure("doorpi", ("face",)).items() if k not in base}
    tpm = {k: v for k, v in closure("doorpi", ("tpm",)).items() if k not in base}
    lock(base, OUT / "requirements.lock")
    lock(face, OUT / "requirements-face.lock")
    lock(tpm, OUT / "requirements-tpm.lock")


if __name__ == "__main__":
    main()
