"""Frame sources: replayed photos (order, EXIF) and the picamera2 adapter with a fake module."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from doorpi.hardware.camera import (
    CameraFormatError,
    FolderSource,
    FrameSource,
    ImageFileSource,
    Picamera2Source,
    load_rgb,
)


def test_folder_source_sorted_and_decoded(nonfaces_dir: Path) -> None:
    src = FolderSource(nonfaces_dir)
    assert isinstance(src, FrameSource)
    names = [f.name for f in src.frames()]
    assert names == sorted(names) and len(names) >= 10
    for f in FolderSource(nonfaces_dir).frames():
        assert f.rgb.dtype == np.uint8 and f.rgb.ndim == 3 and f.rgb.shape[2] == 3


def test_folder_source_nested_order(faces_dir: Path) -> None:
    names = [p.relative_to(faces_dir).as_posix() for p in FolderSource(faces_dir).paths()]
    assert names[:2] == sorted(names)[:2]
    assert names.index("Al_Sharpton/1.jpg") < names.index("Al_Sharpton/2.jpg")


def test_exif_orientation_applied(tmp_path: Path, nonfaces_dir: Path) -> None:
    base = Image.open(nonfaces_dir / "skimage_chelsea.png").convert("RGB")  # a cat, 451x300
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    base.save(path, exif=exif)
    rgb = load_rgb(path)
    assert rgb.shape[:2] == (base.width, base.height)
    src = ImageFileSource(path, repeat=2)
    frames = list(src.frames())
    assert len(frames) == 2 and frames[0].rgb.shape == rgb.shape


def test_max_side_limits_decode(faces_dir: Path) -> None:
    big = max(FolderSource(faces_dir).paths(), key=lambda p: p.stat().st_size)
    rgb = load_rgb(big, max_side=640)
    assert max(rgb.shape[:2]) <= 640


class _FakeRequest:
    def __init__(self, cam: _FakeCamera) -> None:
        self.cam = cam

    def make_array(self, stream: str) -> np.ndarray:
        if stream == "main":
            h, w = self.cam.main_size[1], self.cam.main_size[0]
            a = np.zeros((h, w, 3), np.uint8)
            a[..., 0] = 200  # red channel: BGR888 gives R, G, B order
            return a
        w, h = self.cam.lores_size
        yuv = np.full((h * 3 // 2, w + 64), 7, np.uint8)  # stride-padded rows
        yuv[:h, :w] = 99
        return yuv

    def get_metadata(self) -> dict:
        return {"SensorTimestamp": 2_000_000_000}

    def release(self) -> None:
        self.cam.released += 1


class _FakeCamera:
    instances: ClassVar[list[_FakeCamera]] = []

    def __init__(self) -> None:
        self.config = None
        self.started = self.stopped = self.closed = False
        self.released = 0
        _FakeCamera.instances.append(self)

    # What picamera2 configures instead of the asked main format (None: as asked).
    delivers: str | None = None

    def create_video_configuration(
        self, main: dict, lores: dict, controls: dict | None = None
    ) -> dict:
        self.main_size, self.lores_size = main["size"], lores["size"]
        return {"main": dict(main), "lores": lores, "controls": controls or {}}

    def configure(self, cfg: dict) -> None:
        self.config = cfg
        if self.delivers:
            cfg["main"]["format"] = self.delivers

    def camera_configuration(self) -> dict:
        return self.config

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True

    def capture_request(self) -> _FakeRequest:
        return _FakeRequest(self)

    def capture_array(self, stream: str) -> np.ndarray:
        return _FakeRequest(self).make_array(stream)


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch):
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = _FakeCamera
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    _FakeCamera.instances.clear()
    return mod


def test_picamera2_source_streams(fake_picamera2) -> None:
    src = Picamera2Source(main_size=(640, 480), lores_size=(320, 240))
    cam = _FakeCamera.instances[0]
    assert cam.started
    assert cam.config["main"]["format"] == "BGR888"
    ctl = cam.config["controls"]  # auto exposure on, centre-weighted metering
    assert ctl["AeEnable"] is True and ctl["AeMeteringMode"] == 0
    assert cam.config["lores"]["format"] == "YUV420"
    frame = next(src.frames())
    assert frame.rgb.shape == (480, 640, 3) and frame.rgb[0, 0, 0] == 200
    assert frame.luma.shape == (240, 320) and (frame.luma == 99).all()
    assert frame.timestamp == pytest.approx(2.0)
    assert cam.released == 1  # buffers returned to the camera
    assert src.lores_luma().shape == (240, 320)
    src.stop()
    assert cam.stopped
    cam.stopped = False
    src.stop()  # idempotent: the camera is not stopped twice
    assert not cam.stopped
    src.start()
    src.close()
    assert cam.stopped and cam.closed
    assert list(src.frames()) == []


def test_picamera2_frame_runs_through_pipeline(fake_picamera2, pipeline, photo) -> None:
    """A camera frame with a face: detection on the lores luma, crop from the main stream."""
    face = photo("Angela_Bassett/1.jpg")  # 250x250

    class FaceRequest(_FakeRequest):
        def make_array(self, stream: str) -> np.ndarray:
            if stream == "main":
                big = np.asarray(Image.fromarray(face).resize((500, 500)))
                out = np.zeros((500, 666, 3), np.uint8)
                out[:, 83:583] = big
                return out
            small = np.asarray(Image.fromarray(face).convert("L").resize((180, 180)))
            yuv = np.zeros((180 * 3 // 2, 256), np.uint8)
            yuv[:180, 30:210] = small
            return yuv

    cam = _FakeCamera()
    cam.capture_request = lambda: FaceRequest(cam)  # type: ignore[method-assign]
    src = Picamera2Source(main_size=(666, 500), lores_size=(240, 180), camera=cam)
    frame = src.capture()
    res = pipeline.process(frame.rgb, lores=frame.luma)
    assert res.ok, res.reason
    direct = pipeline.process(photo("Angela_Bassett/1.jpg"))
    assert float(res.embedding @ direct.embedding) > 0.8


def test_picamera2_other_format_refused_naming_both(fake_picamera2) -> None:
    """A camera that configures RGB888 (B, G, R arrays) would swap red and blue: refused."""
    cam = _FakeCamera()
    cam.delivers = "RGB888"
    with pytest.raises(CameraFormatError) as err:
        Picamera2Source(camera=cam)
    msg = str(err.value)
    assert "BGR888" in msg and "RGB888" in msg and "\n" not in msg
    assert cam.closed and not cam.started
