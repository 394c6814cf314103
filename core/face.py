"""Image front end: robust loading, FFHQ-style face alignment, tensors in [-1, 1].

Alignment uses the `face-alignment` package (68 landmarks) and the FFHQ recipe (oriented crop
from the eye and mouth positions). Its weights come from the internet on first use; when they
cannot be had (offline) or no face is found, we fall back to a centred square crop and say so
once per process (a warning, not an error).
"""
from __future__ import annotations

import contextlib
import io
import logging
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
MAX_PIXELS = 20_000 * 20_000  # beyond this we refuse instead of decoding gigabytes
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def load_image(path: str | Path) -> Image.Image:
    """Any PIL-readable image (any mode, bit depth, size) -> RGB PIL image."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image file not found: {path}")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's default bomb guard (89 MP) rejects 10k x 10k photos
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UserError(f"image {path.name} is too large ({img.width}x{img.height})")
            img.draft("RGB", (2048, 2048))  # JPEG: decode big photos at reduced size, much faster
            img.load()
            return to_rgb(ImageOps.exif_transpose(img))
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image {path.name}: not a supported image or it is damaged ({exc})")
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def center_crop(img: Image.Image, size: int) -> Image.Image:
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)


class FaceAligner:
    """Landmark-based FFHQ-style alignment; falls back to a centre crop (warned once)."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._detector = None
        self._unavailable: str | None = None
        self._lock = threading.Lock()

    def _get_detector(self):
        with self._lock:
            if self._detector is None and self._unavailable is None:
                try:
                    import face_alignment

                    # torch.hub prints its download attempt; our warning below says it once
                    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                        self._detector = face_alignment.FaceAlignment(
                            face_alignment.LandmarksType.TWO_D, device=self.device, flip_input=False)
                except Exception as exc:  # offline: urllib/URLError, hub errors, missing packages
                    self._unavailable = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                    warn_once("aligner", "face alignment is unavailable (its landmark model could not be "
                                         f"loaded: {self._unavailable}); using a centred square crop instead")
            return self._detector

    def landmarks(self, img: Image.Image) -> np.ndarray | None:
        detector = self._get_detector()
        if detector is None:
            return None
        found = detector.get_landmarks_from_image(np.asarray(img))
        if not found:
            return None
        return max(found, key=lambda pts: np.ptp(pts[:, 0]) * np.ptp(pts[:, 1]))  # the largest face

    def align(self, img: Image.Image, size: int) -> Image.Image:
        pts = self.landmarks(img)
        if pts is None:
            if self._unavailable is None:
                warn_once("noface", "no face was found in an image; using a centred square crop")
            return center_crop(img, size)
        return ffhq_crop(img, pts, size)


def ffhq_crop(img: Image.Image, landmarks: np.ndarray, size: int) -> Image.Image:
    """The FFHQ alignment recipe: an oriented square from eye and mouth landmarks (68-point)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    mouth_left, mouth_right = lm[48], lm[54]
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return img.transform((size, size), Image.QUAD, tuple((quad + 0.5).flatten()), Image.BILINEAR)


def prepare_face(img: Image.Image, size: int, aligner: FaceAligner | None) -> Image.Image:
    """Images already at the model size are taken as aligned crops (e.g. avatar sets)."""
    if img.size == (size, size):
        return img
    if aligner is None:
        return center_crop(img, size)
    return aligner.align(img, size)


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL -> (3, H, W) float in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> RGB PIL."""
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")
