"""Five-point similarity alignment onto the ArcFace 112x112 template.

Why: SFace was trained on crops aligned this way; keypoint precision, not
the embedding model, decides most of the error (see models/README.md), so
BlazeFace's coarse points are refined with the MediaPipe face mesh, which
gives eye centres and the mouth corners the template needs.

Coordinates here use the pixel-centre convention (pixel i is centred at i),
as the ArcFace template does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from doorpi.vision.detect import KP_LEFT_EYE, KP_MOUTH, KP_NOSE, KP_RIGHT_EYE, Detection
from doorpi.vision.exposure import ExposureConfig, normalise
from doorpi.vision.runtime import ModelError, TFLiteModel

CROP_SIZE = 112
# Image-left eye, image-right eye, nose tip, image-left and image-right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)

MESH_SIZE = 192
# Face-mesh landmark indices (image-left = subject's right).
_MESH_EYE_L = (33, 133, 159, 145)
_MESH_EYE_R = (362, 263, 386, 374)
_MESH_NOSE = 4
_MESH_MOUTH = (61, 291)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping src -> dst, as 2x3.

    ``src`` and ``dst`` are (N, 2) points. In two dimensions Umeyama's SVD has
    a closed form: with C the cross-covariance of the centred points, scale
    times rotation is [[a, -b], [b, a]] / var(src) for a = C00 + C11 and
    b = C10 - C01 (the sum of singular values, sign-corrected, is hypot(a, b)),
    which equals the SVD route to rounding (tests/vision/test_detect_align.py)
    at a tenth of its cost.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    a = cov[0, 0] + cov[1, 1]
    b = cov[1, 0] - cov[0, 1]
    var = float((s * s).sum()) / len(src)
    m = np.empty((2, 3))
    m[:, :2] = np.array([[a, -b], [b, a]]) / var
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (closed form); LinAlgError when it is singular."""
    (a, b, tx), (c, d, ty) = np.asarray(m, np.float64)
    det = a * d - b * c
    if det == 0.0 or not np.isfinite(det):
        raise np.linalg.LinAlgError("singular affine matrix")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return np.array([[ia, ib, -(ia * tx + ib * ty)], [ic, id_, -(ic * tx + id_ * ty)]])


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 2x3 affine matrix."""
    return pts @ m[:, :2].T + m[:, 2]


def warp(
    frame: np.ndarray, m: np.ndarray, size: int, image: Image.Image | None = None
) -> np.ndarray:
    """Warp ``frame`` by the frame->output affine ``m`` into a size x size RGB crop.

    Only the needed region of the frame is read (a view; Pillow copies just
    that), and when the crop shrinks the face by 2x or more it is first
    box-reduced so the bilinear sampling does not alias. ``image`` is
    ``frame`` already as a Pillow RGB image (``detect.frame_image``): then
    no region is copied unless it must be reduced.
    """
    (a00, a01, tx), (a10, a11, ty) = invert_affine(m).tolist()
    # The output's corners in the frame, in plain floats (a dozen numpy calls on
    # scalars cost more here than the arithmetic; models/README.md, "Speed").
    xs = (tx, a00 * size + tx, a01 * size + tx, a00 * size + a01 * size + tx)
    ys = (ty, a10 * size + ty, a11 * size + ty, a10 * size + a11 * size + ty)
    h, w = frame.shape[:2]
    x0 = min(max(math.floor(min(xs)) - 2, 0), w - 1)
    y0 = min(max(math.floor(min(ys)) - 2, 0), h - 1)
    x1 = min(max(math.ceil(max(xs)) + 3, x0 + 1), w)
    y1 = min(max(math.ceil(max(ys)) + 3, y0 + 1), h)
    factor = int(math.sqrt(abs(a00 * a11 - a01 * a10)))
    if image is not None and factor < 2:
        # Sample the whole frame's image: Pillow reads only the pixels it needs.
        img, x0, y0 = image, 0, 0
    else:
        img = Image.fromarray(frame[y0:y1, x0:x1])
        if img.mode != "RGB":
            img = img.convert("RGB")
    # output (centre coords) -> region (centre coords)
    tx -= x0
    ty -= y0
    if factor >= 2:
        img = img.reduce(factor)
        # region centre p = f*q + (f-1)/2  ->  q = (p - (f-1)/2) / f
        a00, a01, a10, a11 = a00 / factor, a01 / factor, a10 / factor, a11 / factor
        tx = (tx - (factor - 1) / 2) / factor
        ty = (ty - (factor - 1) / 2) / factor
    # Pillow maps output pixel edges to input edges: shift by half a pixel both sides.
    cx = tx + 0.5 - (a00 * 0.5 + a01 * 0.5)
    cy = ty + 0.5 - (a10 * 0.5 + a11 * 0.5)
    coeffs = (a00, a01, cx, a10, a11, cy)
    out = img.transform((size, size), Image.AFFINE, coeffs, Image.BILINEAR)
    return np.asarray(out)


def blazeface_points(det: Detection) -> tuple[np.ndarray, np.ndarray]:
    """Eyes, nose and mouth centre from BlazeFace, with their template points."""
    kp = det.keypoints - 0.5  # detector works in pixel-edge coordinates
    src = kp[[KP_RIGHT_EYE, KP_LEFT_EYE, KP_NOSE, KP_MOUTH]]
    dst = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(0)])
    return src, dst


@dataclass(frozen=True)
class MeshLandmarks:
    """The face mesh's output for one face, for alignment and liveness alike.

    ``raw`` is the model's (468, 3): x, y in 192x192 crop pixels and z, the
    relative depth liveness reads the head's yaw from; ``points`` are the
    468 (x, y) landmarks in frame pixels; ``score`` is the mesh's face score.
    """

    raw: np.ndarray = field(repr=False)
    points: np.ndarray = field(repr=False)
    score: float

    def five_points(self) -> np.ndarray:
        """Template-ordered five points (eye centres, nose tip, mouth corners), frame pixels."""
        lm = self.points
        return np.stack(
            [
                lm[list(_MESH_EYE_L)].mean(0),
                lm[list(_MESH_EYE_R)].mean(0),
                lm[_MESH_NOSE],
                lm[_MESH_MOUTH[0]],
                lm[_MESH_MOUTH[1]],
            ]
        )


class MeshRefiner:
    """The face mesh on a detection: 468 landmarks, from which five precise points
    (eye centres, nose tip, mouth corners) align the face."""

    def __init__(self, model: TFLiteModel, exposure: ExposureConfig | None = None) -> None:
        if model.input_shape != (1, MESH_SIZE, MESH_SIZE, 3):
            raise ModelError(f"{model.path}: not a MediaPipe face-mesh model")
        self.model = model
        self.exposure = exposure  # None: the mesh sees the crop as the camera gave it

    def roi_transform(self, det: Detection) -> np.ndarray:
        """Frame->192x192 affine of MediaPipe's ROI: 1.5x the box, rotated level with the eyes."""
        kp = det.keypoints - 0.5
        box = det.box - 0.5
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        side = 1.5 * max(det.width, det.height)
        dx, dy = kp[KP_LEFT_EYE] - kp[KP_RIGHT_EYE]
        theta = np.arctan2(dy, dx)
        k = MESH_SIZE / side
        cos, sin = np.cos(-theta) * k, np.sin(-theta) * k
        m = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]])
        m[:, 2] = (MESH_SIZE - 1) / 2 - m[:, :2] @ centre
        return m

    def mesh(
        self, frame: np.ndarray, det: Detection, image: Image.Image | None = None
    ) -> MeshLandmarks:
        """Run the face mesh on ``det``'s region of ``frame``; keeps the depth output.

        ``image``: ``frame`` as a Pillow image, if the caller has one (see ``warp``)."""
        m = self.roi_transform(det)
        crop = warp(frame, m, MESH_SIZE, image)
        if self.exposure is not None:  # the face is the middle half of the 1.5x box
            crop = normalise(crop, self.exposure, (slice(48, 144), slice(48, 144)))
        x = crop.astype(np.float32)[None] * (1.0 / 255.0)
        outs = self.model.run(x)
        raw = next(o for o in outs if o.size == 468 * 3).reshape(468, 3)
        flag = next(o for o in outs if o.size == 1)
        score = float(0.5 * (1.0 + np.tanh(0.5 * float(flag.reshape(-1)[0]))))
        return MeshLandmarks(raw, apply_affine(invert_affine(m), raw[:, :2] - 0.5), score)


def align(
    frame: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray = ARCFACE_TEMPLATE,
    image: Image.Image | None = None,
) -> np.ndarray:
    """The 112x112 RGB crop with ``src`` frame points moved onto ``dst`` template points.

    ``image``: ``frame`` as a Pillow image, if the caller has one (see ``warp``)."""
    return warp(frame, similarity_transform(src, dst), CROP_SIZE, image)
