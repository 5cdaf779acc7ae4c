"""The known-answer test: SFace must reproduce, on this machine, the answers
recorded on the reference machine, or the models do not load (face off).

The real catch (a CPU where the runtime miscomputes SFace) is proved by
`make image-test` under qemu's SVE/SME CPU; here the rule itself is tested
with the real model and real runtime, and with the model's output wrapped
to behave as the broken runtime did (every input embedded alike).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from doorpi.vision import kat
from doorpi.vision.models import DETECTOR, EMBEDDER, MESH, SUMS, load_models
from doorpi.vision.runtime import ModelError


def test_images_are_the_same_bytes_everywhere() -> None:
    digest = hashlib.sha256(b"".join(kat.image(i).tobytes() for i in range(kat.IMAGES)))
    assert digest.hexdigest()[:16] == IMAGES_SHA256_PREFIX
    assert all(kat.image(i).shape == (112, 112, 3) for i in range(kat.IMAGES))


#: Recorded once: the answers in kat.json belong to exactly these bytes.
IMAGES_SHA256_PREFIX = "54c7cb032446234e"


def test_recorded_answers_are_reproduced_by_this_runtime(models_dir: Path) -> None:
    m = load_models(models_dir, num_threads=2, kat=False)
    ref = np.array(json.loads((models_dir.parent / "kat.json").read_text())["answers"])
    got = kat.answers(m.embedder)
    assert np.sum(got * ref, axis=1).min() > 0.999  # the reference machine is this one
    assert (got @ got.T)[0, 1] < 0.6  # the images are told apart: a collapse shows


def test_a_runtime_that_embeds_everything_alike_is_refused(models_dir: Path) -> None:
    m = load_models(models_dir, num_threads=2, kat=False)
    real_run = m.embedder.run
    bias = real_run(np.zeros((1, 112, 112, 3), np.float32))[0] * 50

    def collapsed(x: np.ndarray) -> list[np.ndarray]:  # what qemu's SVE/SME CPU produced
        return [real_run(x)[0] + bias]

    m.embedder.run = collapsed  # type: ignore[method-assign]
    with pytest.raises(ModelError) as info:
        kat.check(m.embedder, models_dir)
    msg = str(info.value)
    assert "known-answer test failed" in msg and "face stays off" in msg and "\n" not in msg


def _copy_models(models_dir: Path, to: Path) -> Path:
    to.mkdir()
    for f in (DETECTOR, MESH, EMBEDDER, SUMS):
        shutil.copyfile(models_dir / f, to / f)
    return to


def test_missing_or_damaged_answers_keep_face_off(models_dir: Path, tmp_path: Path) -> None:
    d = _copy_models(models_dir, tmp_path / "models")
    with pytest.raises(ModelError, match="known answers for SFace missing"):
        load_models(d)
    (d / kat.KAT_FILE).write_text('{"answers": [[1, 2]]}')
    with pytest.raises(ModelError, match="must be 3 x 128 numbers"):
        load_models(d)
    (d / kat.KAT_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="unreadable known answers"):
        load_models(d)
    shutil.copyfile(models_dir.parent / kat.KAT_FILE, d / kat.KAT_FILE)
    assert load_models(d).embedder is not None  # the shipped answers pass


def test_write_round_trips(models_dir: Path, tmp_path: Path) -> None:
    m = load_models(models_dir, num_threads=2, kat=False)
    kat.write(m.embedder, tmp_path / "kat.json")
    d = _copy_models(models_dir, tmp_path / "models")
    shutil.copyfile(tmp_path / "kat.json", d / kat.KAT_FILE)
    kat.check(m.embedder, d)
