"""DET curves (false accept rate against false reject rate) as a PNG, with matplotlib.

Why a plotting library: the curves go into the release note; drawing axes
by hand is error-prone. The Agg backend needs no display. matplotlib is an
optional dependency (``pip install doorpi[eval]``), never needed on the door.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np


def det_points(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) at every distinct score used as threshold (accept when score >= t)."""
    g = np.sort(np.asarray(genuine, np.float64))
    i = np.sort(np.asarray(impostor, np.float64))
    t = np.unique(np.concatenate([g, i]))
    far = 1.0 - np.searchsorted(i, t, side="left") / len(i)
    frr = np.searchsorted(g, t, side="left") / len(g)
    return far, frr


def write_det_png(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike[str],
    threshold: float | None = None,
) -> None:
    """One DET curve per condition on log-log axes; the shipped threshold marked.

    ``curves`` maps a condition name to (genuine scores, impostor scores).
    Rates of zero are drawn at half of one error in that many pairs (a log
    axis has no zero). Raises RuntimeError when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            f"--det-png needs matplotlib (pip install 'doorpi[eval]'): {exc}"
        ) from None
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=110)
    for name, (g, i) in curves.items():
        far, frr = det_points(g, i)
        far = np.maximum(far, 0.5 / len(i))
        frr = np.maximum(frr, 0.5 / len(g))
        (line,) = ax.plot(far, frr, label=name, lw=1.4)
        if threshold is not None:
            fa = max(float((np.asarray(i) >= threshold).mean()), 0.5 / len(i))
            fr = max(float((np.asarray(g) < threshold).mean()), 0.5 / len(g))
            ax.plot([fa], [fr], "o", color=line.get_color(), ms=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false accept rate (impostor pairs)")
    ax.set_ylabel("false reject rate (genuine pairs)")
    title = "DET per condition"
    if threshold is not None:
        title += f" (dots: threshold {threshold:.2f})"
    ax.set_title(title)
    ax.axvline(1e-4, color="0.6", lw=0.8, ls="--")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    plt.close(fig)
