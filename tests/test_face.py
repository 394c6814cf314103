"""Image front end: every mode/size the issue lists, damaged files, alignment and its fallback."""
import logging

import numpy as np
import pytest
from PIL import Image

from core import face
from tests.conftest import expect_user_error


def rgb(h=120, w=90, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode,ext", [("L", "png"), ("RGBA", "png"), ("LA", "png"), ("P", "png"),
                                      ("CMYK", "jpg"), ("RGB", "webp"), ("1", "bmp")])
def test_modes_load_as_rgb(tmp_path, mode, ext):
    path = tmp_path / f"img.{ext}"
    rgb().convert(mode).save(path)
    img = face.load_image(path)
    assert img.mode == "RGB" and img.size == (90, 120)


def test_sixteen_bit_grayscale_keeps_its_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    img = np.asarray(face.load_image(tmp_path / "g16.png"))
    assert img.shape == (64, 128, 3)
    assert img[0, 0, 0] == 0 and img[0, -1, 0] == 255 and 100 < img[0, 64, 0] < 160  # scaled, not clipped


def test_transparency_composited_on_white(tmp_path):
    Image.new("RGBA", (32, 32), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert face.load_image(tmp_path / "clear.png").getpixel((5, 5)) == (255, 255, 255)


def test_huge_image_10k(tmp_path):
    Image.new("RGB", (10_000, 10_000), (40, 90, 200)).save(tmp_path / "huge.png")
    img = face.load_image(tmp_path / "huge.png")
    assert img.size == (10_000, 10_000)
    assert face.prepare_face(img, 128, None).size == (128, 128)


def test_huge_jpeg_is_decoded_at_reduced_size(tmp_path):
    Image.new("RGB", (10_000, 8_000), (200, 90, 40)).save(tmp_path / "huge.jpg", quality=70)
    img = face.load_image(tmp_path / "huge.jpg")
    # JPEG draft mode decodes at the largest reduction that keeps both sides >= 2048 px
    assert img.size == (5000, 4000)


def test_missing_image(tmp_path):
    expect_user_error(lambda: face.load_image(tmp_path / "nope.png"), "not found")


def test_corrupt_and_truncated_and_fake_images(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    expect_user_error(lambda: face.load_image(tmp_path / "text.png"), "cannot read", "text.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    expect_user_error(lambda: face.load_image(tmp_path / "empty.jpg"), "cannot read")
    rgb(256, 256).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    expect_user_error(lambda: face.load_image(tmp_path / "cut.png"), "cannot read", "cut.png")


def test_tensor_round_trip():
    img = rgb(64, 64)
    back = face.tensor_to_image(face.image_to_tensor(img))
    assert np.array_equal(np.asarray(back), np.asarray(img))
    t = face.image_to_tensor(img)
    assert t.shape == (3, 64, 64) and t.min() >= -1 and t.max() <= 1


def test_model_sized_images_are_taken_as_aligned():
    img = rgb(128, 128)
    assert face.prepare_face(img, 128, face.FaceAligner()) is img


def test_offline_alignment_falls_back_to_centre_crop_and_warns_once(caplog, monkeypatch):
    aligner = face.FaceAligner()

    def offline(*args, **kwargs):
        raise OSError("no network")

    import face_alignment

    monkeypatch.setattr(face_alignment, "FaceAlignment", offline)
    monkeypatch.setattr(face, "_warned", set())
    with caplog.at_level(logging.WARNING):
        a = aligner.align(rgb(200, 150), 128)
        b = aligner.align(rgb(300, 100, seed=1), 128)
    assert a.size == b.size == (128, 128)
    warnings = [r for r in caplog.records if "centred square crop" in r.getMessage()]
    assert len(warnings) == 1


def test_image_without_a_face_is_centre_cropped_with_a_warning(caplog, monkeypatch):
    class NoFaces:
        def get_landmarks_from_image(self, image):
            return None

    aligner = face.FaceAligner()
    aligner._detector = NoFaces()
    monkeypatch.setattr(face, "_warned", set())
    img = rgb(100, 200)
    with caplog.at_level(logging.WARNING):
        out = aligner.align(img, 64)
    assert np.array_equal(np.asarray(out), np.asarray(face.center_crop(img, 64)))
    assert any("no face was found" in r.getMessage() for r in caplog.records)


def test_ffhq_crop_uses_the_landmarks():
    """Landmarks of an upright face centred in the image: the crop is centred on eyes/mouth."""
    img = Image.new("RGB", (400, 400), (0, 0, 0))
    img.paste((255, 255, 255), (190, 150, 210, 260))  # a bright bar between eyes and mouth
    lm = np.zeros((68, 2))
    lm[36:42] = (170, 170)
    lm[42:48] = (230, 170)
    lm[48], lm[54] = (180, 250), (220, 250)
    out = np.asarray(face.ffhq_crop(img, lm, 64))
    assert out.shape == (64, 64, 3)
    assert out[28:40, 30:34].mean() > 200  # the bar lands in the middle of the crop
    assert out[:, :8].mean() < 30


def face_landmarks(centre, eye_distance, angle_deg=0.0) -> np.ndarray:
    """68 points with the eyes and mouth corners that ffhq_crop reads, for a face at `centre`
    turned by `angle_deg` (image coordinates, y down)."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    d = eye_distance
    lm = np.zeros((68, 2))
    lm[36:42] = (-d / 2, 0)       # left eye
    lm[42:48] = (d / 2, 0)        # right eye
    lm[48], lm[54] = (-d / 3, d), (d / 3, d)  # mouth corners
    return lm @ rot.T + np.asarray(centre)


class FakeLandmarks:
    """Stands in for face_alignment.FaceAlignment: returns the given faces for every image."""

    made = []

    def __init__(self, landmarks_type, device="cpu", flip_input=False):
        FakeLandmarks.made.append(device)
        self.faces, self.calls = FakeLandmarks.faces, 0

    def get_landmarks_from_image(self, image):
        self.calls += 1
        return [f.copy() for f in self.faces]


def dot_centre(img: np.ndarray, colour) -> np.ndarray:
    """Mean (x, y) of the pixels close to `colour`."""
    ys, xs = np.nonzero(np.abs(img.astype(int) - colour).sum(-1) < 60)
    assert len(xs), "the marker left the crop"
    return np.array([xs.mean(), ys.mean()])


@pytest.fixture()
def fake_detector(monkeypatch):
    import face_alignment

    FakeLandmarks.made = []
    monkeypatch.setattr(face_alignment, "FaceAlignment", FakeLandmarks)
    return FakeLandmarks


def test_alignment_picks_the_largest_face_and_turns_it_upright(fake_detector):
    from PIL import ImageDraw

    img = Image.new("RGB", (600, 400), (90, 90, 90))
    draw = ImageDraw.Draw(img)
    small, big = face_landmarks((100, 100), 30), face_landmarks((380, 220), 100, angle_deg=30)
    for pts, (left, right) in ((small, ((0, 255, 0), (0, 255, 0))), (big, ((255, 0, 0), (0, 0, 255)))):
        for centre, colour in ((pts[36], left), (pts[42], right)):
            draw.ellipse([centre[0] - 6, centre[1] - 6, centre[0] + 6, centre[1] + 6], fill=colour)
    fake_detector.faces = [small, big]
    aligner = face.FaceAligner()
    out = np.asarray(aligner.align(img, 128))
    assert fake_detector.made == ["cpu"] and aligner._detector.calls == 1
    red, blue = dot_centre(out, (255, 0, 0)), dot_centre(out, (0, 0, 255))
    assert abs(red[1] - blue[1]) < 2.0           # the turned face comes out with level eyes
    assert red[0] < 64 < blue[0]                 # left eye left of centre, right eye right of it
    assert 20 < blue[0] - red[0] < 50            # FFHQ scale: eyes about a quarter of the crop apart
    assert not (np.abs(out.astype(int) - (0, 255, 0)).sum(-1) < 60).any()  # the small face is not in it


def test_the_engine_aligns_faces_with_the_landmark_model(fake_detector, tiny_checkpoint):
    from core.engine import Engine

    img = Image.new("RGB", (300, 300), (200, 180, 160))
    fake_detector.faces = [face_landmarks((150, 140), 60)]
    engine = Engine(batch_size=2, align_faces=True)
    engine.load(tiny_checkpoint, "cpu")
    out = engine.face_from_style(img, engine.sample_style("female", 0))
    assert out.size == (64, 64) and engine.aligner._detector.calls == 1
