"""Frame -> resident's face -> quality-checked, aligned crop -> embedding.

Why one object: the door asks one question per frame ("who, or why not?")
and the benchmark needs the same stages timed. Nothing here writes images
or embeddings anywhere; results live in memory and ``FaceResult``'s repr
leaves the embedding out so it cannot reach a log by accident.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from doorpi.vision import quality as q
from doorpi.vision.align import MeshLandmarks, MeshRefiner, align, blazeface_points
from doorpi.vision.detect import Detection, FaceDetector, frame_image, pick_resident
from doorpi.vision.embed import Embedder
from doorpi.vision.exposure import ExposureConfig, normalise
from doorpi.vision.models import FaceModels, load_models
from doorpi.vision.orient import Orientation


@dataclass
class FaceResult:
    """Outcome for one frame. ``reason`` is quality.OK when ``embedding`` is set.

    ``detection`` and ``mesh`` are what the detector and the face mesh gave
    for the chosen face, whatever the quality gates said: liveness measures
    the same frame from them instead of running both models again.
    """

    reason: str
    detection: Detection | None = None
    points: np.ndarray | None = field(default=None, repr=False)
    mesh: MeshLandmarks | None = field(default=None, repr=False)
    quality: q.Quality | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)
    timings_ms: dict[str, float] = field(default_factory=dict)
    faces: int = 0

    @property
    def ok(self) -> bool:
        return self.reason == q.OK and self.embedding is not None


# Face centre of the 112x112 aligned crop (eyes to mouth): its levels decide the stretch.
_CROP_ROI = (slice(24, 104), slice(24, 88))


class FacePipeline:
    """Orient, detect (BlazeFace), refine points (face mesh), align, gate, embed (SFace).

    ``orientation`` turns the camera's picture upright first (``[camera]``
    settings); ``exposure`` normalises each model input's levels (None: off,
    the models see the pixels as captured). Only the resident's face (see
    ``pick_resident``) is ever refined or embedded.
    """

    def __init__(
        self,
        models: FaceModels,
        quality: q.QualityConfig | None = None,
        refine: bool = True,
        score_threshold: float = 0.5,
        exposure: ExposureConfig | None = ExposureConfig(),  # noqa: B008 (frozen)
        orientation: Orientation = Orientation(),  # noqa: B008 (frozen)
    ) -> None:
        self.models = models
        self.exposure = exposure
        self.orientation = orientation
        self.detector = FaceDetector(
            models.detector, score_threshold=score_threshold, exposure=exposure
        )
        self.refiner = MeshRefiner(models.mesh, exposure)
        self.embedder = Embedder(models.embedder)
        self.quality = quality or q.QualityConfig()
        self.refine = refine

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str] | None = None, num_threads: int | None = None
    ) -> FacePipeline:
        """Load hash-checked models from the usual places (see vision.models)."""
        return cls(load_models(directory, num_threads))

    def detect(self, frame: np.ndarray, lores: np.ndarray | None = None) -> list[Detection]:
        """Faces in ``frame`` coordinates; detection may run on a low-res plane.

        ``lores`` (RGB or luma of the same field of view) saves the detector
        from resizing a full frame; boxes are scaled back to ``frame``.
        """
        return self._detect(frame, lores)[0]

    def _detect(
        self, frame: np.ndarray, lores: np.ndarray | None, image: Image.Image | None = None
    ) -> tuple[list[Detection], np.ndarray, float]:
        if lores is None:
            return self.detector.detect_input(frame, image)
        sx = frame.shape[1] / lores.shape[1]
        sy = frame.shape[0] / lores.shape[0]
        s4 = np.array([sx, sy, sx, sy], np.float32)
        s2 = np.array([sx, sy], np.float32)
        dets, x, best = self.detector.detect_input(lores)
        return [Detection(d.box * s4, d.keypoints * s2, d.score) for d in dets], x, best

    def _stages(
        self, frame: np.ndarray, lores: np.ndarray | None
    ) -> tuple[FaceResult, np.ndarray | None]:
        """Detect, refine, align and gate; returns the result and the aligned crop."""
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        frame = self.orientation.apply(frame)
        if lores is not None:
            lores = self.orientation.apply(lores)
        # One Pillow copy of a small frame serves the letterbox and both warps.
        image = frame_image(frame) if lores is None else None
        dets, x, best = self._detect(frame, lores, image)
        det = pick_resident(dets, frame.shape)
        t1 = time.perf_counter()
        t["detect"] = (t1 - t0) * 1e3
        if det is None:
            return FaceResult(q.NO_FACE, timings_ms=t), None
        mesh = self.refiner.mesh(frame, det, image)
        points = mesh.five_points()
        # refine=False aligns on BlazeFace's 4 points (comparison); gates use the mesh's 5.
        if self.refine:
            crop = align(frame, points, image=image)
        else:
            crop = align(frame, *blazeface_points(det), image=image)
        t2 = time.perf_counter()
        t["align"] = (t2 - t1) * 1e3
        norm = None
        if self.exposure is not None:
            norm = normalise(crop, self.exposure, _CROP_ROI)
        qual = q.assess(points, crop, frame.shape, det.width, mesh.score, self.quality, norm)
        if qual.ok and self.detector.upside_down(x, best):
            qual = q.Quality(q.UPSIDE_DOWN, qual.metrics)
        t["quality"] = (time.perf_counter() - t2) * 1e3
        res = FaceResult(qual.reason, det, points, mesh, qual, timings_ms=t, faces=len(dets))
        return res, crop if norm is None else norm

    def _embed(self, res: FaceResult, crop: np.ndarray) -> None:
        t0 = time.perf_counter()
        res.embedding = self.embedder.embed(crop)
        res.timings_ms["embed"] = (time.perf_counter() - t0) * 1e3

    def process(self, frame: np.ndarray, lores: np.ndarray | None = None) -> FaceResult:
        """Run every stage on one RGB uint8 frame; no embedding unless all gates pass."""
        res, crop = self._stages(frame, lores)
        if crop is not None and res.reason == q.OK:
            self._embed(res, crop)
        return res

    def embed_any(self, frame: np.ndarray, lores: np.ndarray | None = None) -> FaceResult:
        """Embedding whenever a face is found, gates or not (to evaluate the model alone)."""
        res, crop = self._stages(frame, lores)
        if crop is not None:
            self._embed(res, crop)
        return res
