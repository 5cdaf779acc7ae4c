"""SFace identity embedding (128-d, L2-normalised).

Why only this: the law notes forbid computing anything but the identity
embedding (no age, gender, emotion).
"""

from __future__ import annotations

import numpy as np

from doorpi.vision.align import CROP_SIZE
from doorpi.vision.runtime import ModelError, TFLiteModel

EMBEDDING_DIM = 128


class Embedder:
    """Turns an aligned 112x112 RGB uint8 crop into a unit vector."""

    def __init__(self, model: TFLiteModel) -> None:
        shape = model.input_shape
        if shape == (1, CROP_SIZE, CROP_SIZE, 3):
            self._nchw = False
        elif shape == (1, 3, CROP_SIZE, CROP_SIZE):
            self._nchw = True
        else:
            raise ModelError(f"{model.path}: not a 112x112 SFace model (input {shape})")
        self.model = model

    def embed(self, crop: np.ndarray) -> np.ndarray:
        """Unit-length float32 embedding; the model takes RGB pixel values 0..255."""
        x = crop.astype(np.float32)[None]
        if self._nchw:
            x = x.transpose(0, 3, 1, 2)
        v = self.model.run(x)[0].reshape(-1)
        if v.size != EMBEDDING_DIM:
            raise ModelError(f"{self.model.path}: embedding has {v.size} values, expected 128")
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v
