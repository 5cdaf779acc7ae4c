"""A ``doorpi.facepath.FaceEngine`` built on the pipeline and a template gallery.

Why: the face path decides *when* to look; this decides *what a frame
means*: a quality hint ("too_far"), a match, or, after a few good frames
that match nobody, a final rejection. Embeddings exist only inside
``process`` and are dropped when it returns. Liveness is not part of this
engine yet; the lead's gate must not treat a match as live on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from doorpi.facepath import FaceOutcome
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
    ) -> None:
        self.pipeline = pipeline
        self.gallery = gallery
        self.threshold = threshold
        self.margin = margin
        self.max_nonmatching = max_nonmatching_frames
        self.detect_on_luma = detect_on_luma
        self._target: int | None = None
        self._misses = 0

    def begin(self, resident_id: int | None) -> None:
        self._target = resident_id
        self._misses = 0

    def end(self) -> None:
        self._target = None
        self._misses = 0

    def process(self, frame: Any, now: float) -> FaceOutcome:
        return self.decide(self.look(frame))

    def look(self, frame: Any) -> FaceResult:
        """The pipeline's result for one frame (a ``Frame`` or an RGB array)."""
        rgb = getattr(frame, "rgb", frame)
        luma = getattr(frame, "luma", None) if self.detect_on_luma else None
        return self.pipeline.process(np.asarray(rgb), lores=luma)

    def decide(self, res: FaceResult) -> FaceOutcome:
        """What one frame's result means; takes the embedding out of ``res``."""
        if not res.ok:
            return FaceOutcome("pending", hint=res.reason)
        emb = res.embedding
        res.embedding = None  # nothing biometric outlives this call
        if self._target is not None:
            scores = self.gallery.scores(emb)
            mine = np.array([i == str(self._target) for i in self.gallery.ids], bool)
            best = float(scores[mine].max()) if mine.any() else -1.0
            if best >= self.threshold:
                return FaceOutcome("matched", resident_id=self._target, score=best)
        else:
            m = self.gallery.search(emb)
            if m.accepted(self.threshold, self.margin) and m.identity is not None:
                return FaceOutcome("matched", resident_id=int(m.identity), score=m.score)
        return self.miss()

    def miss(self) -> FaceOutcome:
        """One more good frame that matched nobody in this window: after
        ``max_nonmatching_frames`` of them the final no_match, else a hint.
        The one place this rule lives (the gate's card-template check uses it too)."""
        self._misses += 1
        if self._misses >= self.max_nonmatching:
            return FaceOutcome("rejected", reason="no_match")
        return FaceOutcome("pending", hint="no_match")
