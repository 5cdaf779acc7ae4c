"""Template matching: 1:1 verification and vectorised 1:N search.

Why a margin: with many residents the best score alone lets a stranger
match whoever happens to be closest; requiring the best to beat the
second-best by a margin rejects ambiguous matches (open-set search).
Templates live only in memory here; storage (encrypted) is the store's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from doorpi.vision.embed import EMBEDDING_DIM

_INT8_SCALE = 127.0
# Rows per matrix-vector product. Below OpenBLAS's threading cut-off, so a
# search never spawns BLAS threads that fight the TFLite threads: measured
# on the 2-core dev machine, 100k templates took 5 ms in 2048-row chunks and
# 16-300 ms in one threaded product under load.
_CHUNK = 2048


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (need not be normalised)."""
    a = np.asarray(a, np.float32).reshape(-1)
    b = np.asarray(b, np.float32).reshape(-1)
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / den if den > 0 else 0.0


def normalise(m: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    m = np.asarray(m, np.float32)
    n = np.linalg.norm(m, axis=-1, keepdims=True)
    return m / np.maximum(n, 1e-12)


@dataclass(frozen=True)
class Match:
    """Result of a 1:N search: best identity, its score and the runner-up's."""

    identity: str | None
    score: float
    second: float

    @property
    def margin(self) -> float:
        return self.score - self.second

    def accepted(self, threshold: float, min_margin: float = 0.0) -> bool:
        """Match only above the threshold and clear of the runner-up."""
        return self.identity is not None and self.score >= threshold and (self.margin >= min_margin)


class Gallery:
    """In-memory enrolled templates as one (N, 128) matrix for vectorised search.

    ``dtype=np.int8`` stores templates 4x smaller (scale 127) for large sites
    on a 512 MB Pi; they are dequantized chunk by chunk during search.
    """

    def __init__(self, dtype: type = np.float32, dim: int = EMBEDDING_DIM) -> None:
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.int8)):
            raise ValueError("gallery dtype must be float32 or int8")
        self.dtype = np.dtype(dtype)
        self.dim = dim
        self.ids: list[str] = []
        self._m = np.empty((0, dim), self.dtype)

    def __len__(self) -> int:
        return len(self.ids)

    def _encode(self, m: np.ndarray) -> np.ndarray:
        m = normalise(m.reshape(-1, self.dim))
        if self.dtype == np.int8:
            return np.clip(np.round(m * _INT8_SCALE), -127, 127).astype(np.int8)
        return m

    def set(self, ids: Sequence[str], templates: np.ndarray) -> None:
        """Replace all templates at once (one identity per row; ids may repeat)."""
        templates = np.asarray(templates, np.float32).reshape(-1, self.dim)
        if len(ids) != len(templates):
            raise ValueError("one id per template row")
        self.ids = list(ids)
        self._m = self._encode(templates)

    def add(self, identity: str, template: np.ndarray) -> None:
        """Append one template (re-allocates; enrolment is rare)."""
        self.ids.append(identity)
        self._m = np.vstack([self._m, self._encode(np.asarray(template))])

    def remove(self, identity: str) -> int:
        """Drop every template of ``identity``; returns how many were removed."""
        keep = np.array([i != identity for i in self.ids], bool)
        removed = int((~keep).sum())
        if removed:
            self.ids = [i for i in self.ids if i != identity]
            self._m = self._m[keep]
        return removed

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine of the query against every template, shape (N,)."""
        q = normalise(np.asarray(query, np.float32).reshape(-1))
        n = len(self.ids)
        out = np.empty(n, np.float32)
        if self.dtype == np.float32:
            for start in range(0, n, _CHUNK):
                np.dot(self._m[start : start + _CHUNK], q, out=out[start : start + _CHUNK])
            return out
        qs = q / _INT8_SCALE
        for start in range(0, n, _CHUNK):
            block = self._m[start : start + _CHUNK].astype(np.float32)
            np.dot(block, qs, out=out[start : start + _CHUNK])
        return out

    def search(self, query: np.ndarray) -> Match:
        """Best identity and the best score of any *other* identity."""
        n = len(self.ids)
        if n == 0:
            return Match(None, -1.0, -1.0)
        s = self.scores(query)
        best = int(np.argmax(s))
        best_id = self.ids[best]
        if n == 1:
            return Match(best_id, float(s[best]), -1.0)
        top = np.argpartition(-s, min(n - 1, 8))[: min(n, 9)]
        top = top[np.argsort(-s[top])]
        second = next((float(s[i]) for i in top if self.ids[i] != best_id), None)
        if second is None:  # the top 9 all belong to the best identity: scan the rest
            others = np.array([i != best_id for i in self.ids], bool)
            second = float(s[others].max()) if others.any() else -1.0
        return Match(best_id, float(s[best]), second)


# Cosine threshold and 1:N margin shipped with sface.tflite; chosen from the
# measured score distributions (models/README.md, "Threshold").
SHIPPED_THRESHOLD = 0.45
SHIPPED_MARGIN = 0.05
# Per-comparison false-accept rate at the shipped threshold, as the 95 % upper
# bound (Clopper-Pearson) of 0 false accepts in 31,880 impostor pairs on
# ../shared/faces (models/README.md). Small evaluations cannot prove lower, so
# `doorpi status` uses this bound for the 1:N estimate 1 - (1 - FAR)^N.
SHIPPED_FAR_UPPER = 1.16e-4
