"""BlazeFace short-range face detector (MediaPipe model, decoded here).

Why our own decoder: MediaPipe is not installable on a Pi Zero 2 W and the
model alone is 230 kB. Anchors, box decoding and weighted NMS follow the
MediaPipe ``face_detection_short_range`` graph so scores and boxes match it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from doorpi.vision.exposure import ExposureConfig, normalise
from doorpi.vision.runtime import ModelError, TFLiteModel

INPUT_SIZE = 128
# MediaPipe SsdAnchorsCalculator options of the short-range graph.
_STRIDES = (8, 16, 16, 16)
_SCORE_CLIP = 100.0

# BlazeFace keypoint order (subject's right eye is on the image's left).
KP_RIGHT_EYE, KP_LEFT_EYE, KP_NOSE, KP_MOUTH, KP_RIGHT_EAR, KP_LEFT_EAR = range(6)


def generate_anchors() -> np.ndarray:
    """Anchor centres (896, 2) in [0, 1], as MediaPipe's SsdAnchorsCalculator.

    With ``fixed_anchor_size`` every anchor is 1x1, and layers sharing a
    stride are merged (2 anchors per cell at stride 8, 6 at stride 16).
    """
    out = []
    i = 0
    while i < len(_STRIDES):
        stride = _STRIDES[i]
        n = 0
        while i < len(_STRIDES) and _STRIDES[i] == stride:
            n += 2  # aspect ratio 1.0 plus the interpolated scale
            i += 1
        fm = int(np.ceil(INPUT_SIZE / stride))
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        centres = np.stack([(xs + 0.5) / fm, (ys + 0.5) / fm], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


ANCHORS = generate_anchors()


@dataclass(frozen=True)
class Detection:
    """One face: box (x0, y0, x1, y1) and 6 keypoints (x, y) in frame pixels."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


def decimation(frame_shape: tuple[int, ...], size: int = INPUT_SIZE) -> int:
    """The stride ``letterbox`` takes a frame of ``frame_shape`` down by before resizing."""
    return max(1, int(max(frame_shape[:2]) // (4 * size)))


def letterbox(
    frame: np.ndarray, size: int = INPUT_SIZE, image: Image.Image | None = None
) -> tuple[np.ndarray, float, float, float]:
    """Resize keeping aspect ratio and pad to ``size``; returns (img, scale, pad_x, pad_y).

    ``img`` is uint8 (size, size, 3). Large frames are first decimated by a
    stride view (no copy) so Pillow only touches ~2x the target pixels.
    A 2-D luma plane is accepted and replicated to three channels.
    ``image``: ``frame`` already as a Pillow image (``frame_image``), used
    when no decimation is needed instead of converting the frame again.
    """
    step = decimation(frame.shape, size)
    small = frame[::step, ::step]
    sh, sw = small.shape[:2]
    scale = size / max(sh, sw)
    nw, nh = max(1, round(sw * scale)), max(1, round(sh * scale))
    if image is None or step != 1:
        image = Image.fromarray(np.ascontiguousarray(small))
    arr = np.asarray(image.resize((nw, nh), Image.BILINEAR))
    if arr.ndim == 2:
        arr = arr[..., None]
    out = np.zeros((size, size, 3), np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py : py + nh, px : px + nw] = arr
    return out, scale / step, float(px), float(py)


def frame_image(frame: np.ndarray, size: int = INPUT_SIZE) -> Image.Image | None:
    """``frame`` as one Pillow RGB image for the letterbox and both warps, or None.

    Why: Pillow needs its own copy of the pixels; converting a small frame once
    costs less than converting the letterbox's input and two face regions
    separately (models/README.md, "Speed"). None for frames the letterbox
    decimates (converting all of a large frame costs more than the regions)
    and for anything but a C-contiguous (H, W, 3) uint8 array.
    """
    if (
        frame.ndim != 3
        or frame.shape[2] != 3
        or frame.dtype != np.uint8
        or not frame.flags.c_contiguous
        or decimation(frame.shape, size) != 1
    ):
        return None
    return Image.fromarray(frame)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, iou_thr: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WEIGHTED non-max suppression: overlapping boxes are averaged by score."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    alive = np.ones(len(scores), bool)
    result = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        overlap = _iou(boxes[i], boxes) > iou_thr
        group = overlap & alive
        group[i] = True
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kp = (kps[group].reshape(int(group.sum()), -1) * w).sum(0) / w.sum()
        result.append((box, kp.reshape(-1, 2), float(scores[i])))
        alive &= ~group
    return result


class FaceDetector:
    """Finds faces in an RGB (or luma) frame."""

    def __init__(
        self,
        model: TFLiteModel,
        score_threshold: float = 0.5,
        iou_threshold: float = 0.3,
        exposure: ExposureConfig | None = None,
    ) -> None:
        if model.input_shape != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise ModelError(f"{model.path}: not a BlazeFace short-range model")
        self.model = model
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        # None: the model sees the frame as the camera gave it (liveness, old evaluations).
        self.exposure = exposure

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces above the score threshold, best first, in frame pixels."""
        return self.detect_input(frame)[0]

    def detect_input(
        self, frame: np.ndarray, image: Image.Image | None = None
    ) -> tuple[list[Detection], np.ndarray, float]:
        """Like ``detect``, plus the model input it ran on and the frame's best
        logit (both for ``upside_down``). ``image``: ``frame_image(frame)``."""
        img, scale, px, py = letterbox(frame, image=image)
        if self.exposure is not None:  # levels of the picture, not of the padding
            ix, iy = int(px), int(py)
            roi = (slice(iy, INPUT_SIZE - iy), slice(ix, INPUT_SIZE - ix))
            img = normalise(img, self.exposure, roi)
        x = (img.astype(np.float32) * (2.0 / 255.0) - 1.0)[None]
        reg, cls = self._run(x)
        logits = np.clip(cls.reshape(-1), -_SCORE_CLIP, _SCORE_CLIP)
        best = float(logits.max())
        scores = 0.5 * (1.0 + np.tanh(0.5 * logits))  # overflow-free sigmoid
        keep = scores >= self.score_threshold
        if not keep.any():
            return [], x, best
        raw = reg.reshape(-1, 16)[keep]
        anchors = ANCHORS[keep] * INPUT_SIZE
        cx = raw[:, 0] + anchors[:, 0]
        cy = raw[:, 1] + anchors[:, 1]
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        kps = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :]
        out = []
        for box, kp, score in weighted_nms(boxes, kps, scores[keep], self.iou_threshold):
            box_px = (box - np.array([px, py, px, py], np.float32)) / scale
            kp_px = (kp - np.array([px, py], np.float32)) / scale
            out.append(Detection(box_px.astype(np.float32), kp_px.astype(np.float32), score))
        return out, x, best

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reg, cls = self.model.run(x)
        if reg.shape[-1] != 16:  # some converters swap output order
            reg, cls = cls, reg
        return reg, cls

    def upside_down(self, x: np.ndarray, best_logit: float) -> bool:
        """True when the faces in model input ``x`` (best logit ``best_logit``) are upside down.

        Why: the face mesh and BlazeFace's keypoints both report an upright
        face (eyes above nose above mouth) for a face turned 180 degrees, so
        landmark geometry cannot tell; BlazeFace's confidence can. On all 255
        photos of ../shared/faces the best logit of the frame beat that of the
        frame turned 180 degrees by 0.48 or more (median 2.1), so a face whose
        turned frame scores higher is upside down. A face scored above
        ``UPRIGHT_SURE_LOGIT`` (2.0) is taken as upright without the second run:
        no upside-down face there scored above logit 1.56, and 94 % of the
        upright ones score above 2.0, so the extra detector run (about 2 ms
        here) is needed on few frames.
        """
        if best_logit >= UPRIGHT_SURE_LOGIT:
            return False
        turned = np.ascontiguousarray(x[:, ::-1, ::-1])
        return float(self._run(turned)[1].max()) > best_logit


# Above this best logit a face is taken as upright without a second run (see upside_down).
UPRIGHT_SURE_LOGIT = 2.0


def pick_resident(detections: list[Detection], frame_shape: tuple[int, ...]) -> Detection | None:
    """The face of the person at the door: large, central, inside the frame, confident.

    Why: the resident stands closest and in front; a passer-by is small or
    off to the side, and a face cut by the frame edge cannot be aligned.
    Taking the highest score alone cost 2 points of EER in the prototype.
    The key is visible area x score x (1 - normalised offset from centre)^2.
    """
    if not detections:
        return None
    h, w = frame_shape[:2]
    diag = float(np.hypot(w, h))

    def key(d: Detection) -> float:
        bx = np.clip(d.box, 0, [w, h, w, h])
        area = float((bx[2] - bx[0]) * (bx[3] - bx[1]))
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        off = float(np.hypot(cx - w / 2, cy - h / 2)) / diag
        return area * d.score * (1.0 - off) ** 2

    return max(detections, key=key)
