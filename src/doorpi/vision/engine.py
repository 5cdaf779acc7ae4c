"""A ``doorpi.facepath.FaceEngine`` built on the pipeline and a template gallery.

Why: the face path decides *when* to look; this decides *what a frame
means*: a quality hint ("too_far"), a match, or, after a few good frames
that match nobody, a final rejection. Embeddings live only in memory: the
last ``fuse_frames`` good frames of the current window (fusion), dropped
when the window ends or decides. Liveness is not part of this engine; the
gate's engine (doorpi.facebuild) adds it.

Fusion: a gate sees several frames of the person asking; the decision is
taken on the normalised mean of the window's good frames so far (up to
``fuse_frames``), one more frame at a time. A frame joins the mean only if
it resembles it (cosine >= ``same_person``), else it starts a new mean: a
second person stepping in is not averaged with the first. Measured on
../shared/faces (models/README.md, "Fusion").
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from doorpi.facepath import FaceOutcome
from doorpi.vision.camcheck import OK, SWAPPED, ChannelOrderCheck
from doorpi.vision.match import SHIPPED_MARGIN, SHIPPED_THRESHOLD, Gallery
from doorpi.vision.pipeline import FacePipeline, FaceResult


class PipelineFaceEngine:
    """1:1 when the window was opened for a resident (card + face), else 1:N."""

    def __init__(
        self,
        pipeline: FacePipeline,
        gallery: Gallery,
        threshold: float = SHIPPED_THRESHOLD,
        margin: float = SHIPPED_MARGIN,
        max_nonmatching_frames: int = 3,
        detect_on_luma: bool = False,
        fuse_frames: int = 3,
        same_person: float = 0.6,
    ) -> None:
        self.pipeline = pipeline
        self.gallery = gallery
        self.threshold = threshold
        self.margin = margin
        self.max_nonmatching = max_nonmatching_frames
        self.detect_on_luma = detect_on_luma
        self.fuse_frames = max(1, fuse_frames)
        self.same_person = same_person
        self.channels = ChannelOrderCheck()
        self.camera_problem = ""
        self._target: int | None = None
        self._misses = 0
        self._good: list[np.ndarray] = []

    def begin(self, resident_id: int | None) -> None:
        self._target = resident_id
        self._misses = 0
        self._good = []

    def end(self) -> None:
        self._target = None
        self._misses = 0
        self._good = []

    def process(self, frame: Any, now: float) -> FaceOutcome:
        return self.decide(self.look(frame))

    def look(self, frame: Any) -> FaceResult:
        """The pipeline's result for one frame (a ``Frame`` or an RGB array)."""
        rgb = getattr(frame, "rgb", frame)
        luma = getattr(frame, "luma", None) if self.detect_on_luma else None
        res = self.pipeline.process(np.asarray(rgb), lores=luma)
        qual = getattr(res, "quality", None)
        if qual is not None and "red_blue" in qual.metrics:
            self._check_channels(qual.metrics["red_blue"])
        return res

    def _check_channels(self, red_blue: float) -> None:
        """A camera fault seen in the faces themselves (``doorpi.vision.camcheck``).

        ``camera_problem`` is one line while the last faces say red and blue are
        swapped, and "" again once as many faces look right (OK verdict); gray
        (IR) faces change nothing. Logged once per change here; the gate shows
        it as the ``camera format`` device fault (``doorpi.devicewatch``)."""
        verdict = self.channels.observe(red_blue)
        if verdict == SWAPPED and not self.camera_problem:
            self.camera_problem = (
                f"red and blue look swapped (at least {self.channels.majority:.0%} of the "
                f"last {self.channels.window} faces were bluer than red); check the camera format"
            )
            logging.getLogger("doorpi.face").error("camera: %s", self.camera_problem)
        elif verdict == OK and self.camera_problem:
            self.camera_problem = ""
            logging.getLogger("doorpi.face").info("camera: faces look right again (red, blue)")

    def fuse(self, emb: np.ndarray) -> np.ndarray:
        """The window's fused embedding after adding ``emb`` (see the module doc)."""
        if self._good:
            mean = np.mean(self._good, axis=0)
            if float(emb @ mean) / max(float(np.linalg.norm(mean)), 1e-9) < self.same_person:
                self._good = []  # someone else: start again
        self._good = [*self._good, emb][-self.fuse_frames :]
        fused = np.mean(self._good, axis=0)
        return fused / max(float(np.linalg.norm(fused)), 1e-9)

    def decide(self, res: FaceResult) -> FaceOutcome:
        """What one frame's result means; takes the embedding out of ``res``."""
        if not res.ok:
            return FaceOutcome("pending", hint=res.reason)
        emb = self.fuse(res.embedding)
        res.embedding = None  # kept only in the window's fusion, dropped at its end
        if self._target is not None:
            scores = self.gallery.scores(emb)
            mine = np.array([i == str(self._target) for i in self.gallery.ids], bool)
            best = float(scores[mine].max()) if mine.any() else -1.0
            if best >= self.threshold:
                self._good = []
                return FaceOutcome("matched", resident_id=self._target, score=best)
        else:
            m = self.gallery.search(emb)
            if m.accepted(self.threshold, self.margin) and m.identity is not None:
                self._good = []
                return FaceOutcome("matched", resident_id=int(m.identity), score=m.score)
        return self.miss()

    def miss(self) -> FaceOutcome:
        """One more good frame that matched nobody in this window: after
        ``max_nonmatching_frames`` of them the final no_match, else a hint.
        The one place this rule lives (the gate's card-template check uses it too)."""
        self._misses += 1
        if self._misses >= self.max_nonmatching:
            self._good = []
            return FaceOutcome("rejected", reason="no_match")
        return FaceOutcome("pending", hint="no_match")
