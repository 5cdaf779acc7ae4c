"""Frame sources: the camera, or photos replayed for tests and evaluation.

Why a protocol: picamera2 exists only on Raspberry Pi OS; everything above
this module sees RGB uint8 HxWx3 numpy frames (plus, when the camera gives
one cheaply, a low-resolution luma plane for presence and face detection),
so tests and ``doorpi eval`` replay real photos through the same code.
Frames stay in memory; nothing here writes an image anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass
class Frame:
    """One captured frame: ``rgb`` (H, W, 3) uint8, optional ``luma`` (h, w) uint8."""

    rgb: np.ndarray = field(repr=False)
    luma: np.ndarray | None = field(default=None, repr=False)
    name: str | None = None
    timestamp: float | None = None


@runtime_checkable
class FrameSource(Protocol):
    """Anything that yields frames and can be closed."""

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def load_rgb(path: str | os.PathLike[str], max_side: int | None = None) -> np.ndarray:
    """Decode an image file to RGB uint8, applying its EXIF orientation.

    ``max_side`` lets JPEG decode at a reduced scale (``draft``), which keeps
    a 12-megapixel photo from taking 36 MB on a 512 MB Pi.
    Raises `ImageFileError` (an OSError) naming the file when it cannot be
    decoded (truncated, not an image, too large): Pillow's own messages
    ("Truncated File Read") do not say which file.
    """
    try:
        with Image.open(path) as img:
            if max_side and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))
            ImageOps.exif_transpose(img, in_place=True)  # no copy when already upright
            if max_side and max(img.size) > max_side:
                img.thumbnail((max_side, max_side), Image.BILINEAR)
            if img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ImageFileError(f"{path}: cannot decode the image ({exc})") from exc


class CameraFormatError(RuntimeError):
    """The camera delivers another pixel format than the one configured; one line."""


class ImageFileError(OSError):
    """An image file that cannot be decoded; the message names the file."""


class ImageFileSource:
    """One image file as a single frame (``repeat`` times)."""

    def __init__(
        self, path: str | os.PathLike[str], repeat: int = 1, max_side: int | None = None
    ) -> None:
        self.path = Path(path)
        self.repeat = repeat
        self.max_side = max_side

    def frames(self) -> Iterator[Frame]:
        rgb = load_rgb(self.path, self.max_side)
        for _ in range(self.repeat):
            yield Frame(rgb, name=str(self.path))

    def close(self) -> None:
        pass


class FolderSource:
    """Every image under a folder, in sorted path order, decoded lazily one at a time."""

    def __init__(
        self, folder: str | os.PathLike[str], recursive: bool = True, max_side: int | None = None
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: not a folder")
        self.recursive = recursive
        self.max_side = max_side

    def paths(self) -> list[Path]:
        it = self.folder.rglob("*") if self.recursive else self.folder.glob("*")
        return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    def frames(self) -> Iterator[Frame]:
        for p in self.paths():
            yield Frame(load_rgb(p, self.max_side), name=str(p.relative_to(self.folder)))

    def close(self) -> None:
        pass


class Picamera2Source:
    """Raspberry Pi camera via picamera2: main stream RGB, lores stream YUV420 luma.

    picamera2's "BGR888" format yields arrays in R, G, B order (its names
    follow DRM fourcc, little-endian), so ``rgb`` needs no channel swap. The
    lores stream must be YUV on Pi 4 and older; its Y plane is the first
    ``height`` rows of the array, cut to ``width`` (rows are stride-padded).
    Keep both streams at the same aspect ratio (both are scaled from one
    sensor crop), so lores coordinates map to main ones by a pure scale.

    Exposure: auto exposure stays on (``AeEnable``) with centre-weighted
    metering (libcamera ``AeMeteringModeEnum.CentreWeighted`` = 0), so a
    bright sky or doorway at the edges pulls the exposure down less than
    average metering would; ``exposure_value`` (EV, -8..8) biases it for a
    site that is always backlit. Channel order: after ``configure`` the
    format picamera2 reports for the main stream must be the one asked for
    (a different one means red and blue swapped or a padding byte in the
    wrong place); `CameraFormatError` otherwise. That check sees only what
    picamera2 reports; a sensor or ISP that mislabels its output is caught
    later from the faces themselves (doorpi.vision.camcheck).
    """

    MAIN_FORMAT = "BGR888"  # picamera2/DRM naming: arrays come out in R, G, B order
    RGB_ORDER_FORMATS = frozenset({"BGR888", "XBGR8888"})

    def __init__(
        self,
        main_size: tuple[int, int] = (1280, 720),
        lores_size: tuple[int, int] = (320, 180),
        camera: Any = None,
        exposure_value: float = 0.0,
    ) -> None:
        if camera is None:
            from picamera2 import Picamera2  # only on Raspberry Pi OS

            camera = Picamera2()
        self.cam = camera
        self.main_size = main_size
        self.lores_size = lores_size
        cfg = self.cam.create_video_configuration(
            main={"size": main_size, "format": self.MAIN_FORMAT},
            lores={"size": lores_size, "format": "YUV420"},
            controls={"AeEnable": True, "AeMeteringMode": 0, "ExposureValue": exposure_value},
        )
        self.cam.configure(cfg)
        got = self.cam.camera_configuration()["main"]["format"]
        if got not in self.RGB_ORDER_FORMATS:
            self.cam.close()
            raise CameraFormatError(
                f"camera main stream: asked for {self.MAIN_FORMAT} (R, G, B order), "
                f"picamera2 configured {got}: colours would be wrong; face stays off"
            )
        self.cam.start()
        self._running = True
        self._closed = False

    def start(self) -> None:
        """Resume streaming (the face path stops the camera between requests)."""
        if not self._running and not self._closed:
            self.cam.start()
            self._running = True

    def stop(self) -> None:
        """Stop streaming so no frame is even captured while face is idle."""
        if self._running:
            self.cam.stop()
            self._running = False

    def capture(self) -> Frame:
        """One frame: both streams from the same request, then the buffers go back."""
        req = self.cam.capture_request()
        try:
            rgb = req.make_array("main")
            yuv = req.make_array("lores")
            ts = req.get_metadata().get("SensorTimestamp")
        finally:
            req.release()
        w, h = self.lores_size
        luma = yuv[:h, :w]
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise ValueError(f"camera main stream has shape {rgb.shape}, expected HxWx3")
        if rgb.shape[2] == 4:  # XRGB formats: drop the padding byte (view, no copy)
            rgb = rgb[..., :3]
        return Frame(rgb, luma, timestamp=ts / 1e9 if ts else None)

    def lores_luma(self) -> np.ndarray:
        """Only the low-res Y plane, for cheap presence detection."""
        yuv = self.cam.capture_array("lores")
        w, h = self.lores_size
        return yuv[:h, :w]

    def frames(self) -> Iterator[Frame]:
        while not self._closed:
            yield self.capture()

    def close(self) -> None:
        if not self._closed:
            self.stop()
            self._closed = True
            self.cam.close()
