"""Thin TFLite interpreter wrapper.

Why: the device must run with whichever TFLite runtime is installed
(``ai-edge-litert``, which the image ships on Raspberry Pi OS's numpy 1.24,
or the older ``tflite-runtime``, numpy 1.x only), and a broken model file
must surface as one clear ``ModelError`` naming the file so the door falls
back to card/PIN.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


class ModelError(Exception):
    """A model file is missing, corrupt, of the wrong hash or unusable."""


def _interpreter_class() -> Any:
    """Return the Interpreter class of the first importable TFLite runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError as exc:
        raise ModelError(
            "no TFLite runtime: install ai-edge-litert (or tflite-runtime with numpy<2)"
        ) from exc


def default_threads() -> int:
    """Threads for inference: $DOORPI_THREADS or all cores (a Pi has 4)."""
    env = os.environ.get("DOORPI_THREADS")
    if env:
        return max(1, int(env))
    return max(1, os.cpu_count() or 1)


class TFLiteModel:
    """One loaded model with a single float or quantized input.

    ``run`` takes a batch-1 array shaped like the model input and returns the
    outputs in the order of ``output_details`` (copies, so they survive the
    next call). ``invocations`` counts the model's runs (benchmarks and the
    tests that keep the number of model runs per frame from growing).
    """

    def __init__(self, path: str | os.PathLike[str], num_threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        cls = _interpreter_class()
        try:
            self._it = cls(model_path=str(self.path), num_threads=num_threads or default_threads())
            self._it.allocate_tensors()
        except Exception as exc:  # runtimes raise ValueError/RuntimeError on bad files
            raise ModelError(f"{self.path}: cannot load model ({exc.__class__.__name__})") from exc
        self.input_details = self._it.get_input_details()
        self.output_details = self._it.get_output_details()
        if len(self.input_details) != 1:
            raise ModelError(f"{self.path}: expected one input, got {len(self.input_details)}")
        inp = self.input_details[0]
        self.input_shape = tuple(int(x) for x in inp["shape"])
        self.input_dtype = np.dtype(inp["dtype"])
        scale, zero = inp.get("quantization", (0.0, 0))
        self.input_quant = (float(scale), int(zero))
        self._in_index = int(inp["index"])
        self.invocations = 0

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one inference; quantizes a float input if the model wants int8."""
        if self.input_dtype != np.float32 and x.dtype == np.float32:
            scale, zero = self.input_quant
            info = np.iinfo(self.input_dtype)
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(self.input_dtype)
        self._it.set_tensor(self._in_index, x)
        self._it.invoke()
        self.invocations += 1
        outs = []
        for d in self.output_details:
            y = self._it.get_tensor(d["index"])
            if y.dtype != np.float32:  # get_tensor already returns a copy
                scale, zero = d.get("quantization", (0.0, 0))
                y = (y.astype(np.float32) - zero) * scale
            outs.append(y)
        return outs
