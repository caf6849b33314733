"""Over HTTP: images that are not brain MRI slices are refused; unusual ones are answered with a warning."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.utils.images import document_page, phantom_slice, photo_like, random_ellipses, tiled
from tests.utils.payloads import mri_test_image, png_bytes

IMAGE = "/api/v1/imaging/brain-tumor"


def _encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


NOT_SLICES = {
    "1x1-png": lambda: png_bytes((1, 1)),
    "constant-grey-512": lambda: _encode(Image.new("L", (512, 512), 128)),
    "colour-noise-512": lambda: _encode(
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    ),
    "grey-noise-512": lambda: _encode(
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (512, 512), dtype=np.uint8))
    ),
    "coloured-photo": lambda: _encode(photo_like(), "JPEG"),
    "document-page": lambda: _encode(document_page()),
    "random-ellipses": lambda: _encode(random_ellipses(0)),
    "phantom-tiled-2x2": lambda: _encode(tiled(phantom_slice(), 2)),
}


@pytest.mark.parametrize("case", list(NOT_SLICES))
def test_not_a_slice_is_refused_naming_image_and_rule(http, case):
    response = http.post(IMAGE, files={"image": (f"{case}.png", NOT_SLICES[case](), "image/png")})
    assert response.status_code == 400, response.text
    body = response.json()
    assert isinstance(body["error"], str)
    [entry] = body["detail"]
    assert entry["loc"] == ["image"]
    assert entry["type"] == "not_an_mri_slice"
    assert entry["msg"].startswith("not an MRI slice: ")
    assert "input" not in entry


def test_real_slice_is_answered_without_a_validity_warning(http, data_dir):
    for label in ("glioma", "notumor"):
        image = mri_test_image(data_dir, label)
        response = http.post(IMAGE, files={"image": (image.name, image.read_bytes(), "image/jpeg")})
        assert response.status_code == 200, response.text
        assert response.json()["warnings"] == []


def test_synthetic_typical_slice_is_answered_without_a_warning(http):
    response = http.post(IMAGE, files={"image": ("slice.png", _encode(phantom_slice()), "image/png")})
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == []


def test_unusual_image_is_answered_with_a_warning(http):
    """A plausible slice at 64 px: answered, but the CNN input was upsampled from it, so warned."""
    response = http.post(IMAGE, files={"image": ("small.png", _encode(phantom_slice(64)), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert sum(body["prediction"]["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    [warning] = body["warnings"]
    assert warning.startswith("image: unlike the training MRI slices (shorter side under 128 px")
    assert warning.endswith("the prediction may be unreliable")


def test_undecodable_upload_keeps_its_rule(http):
    response = http.post(IMAGE, files={"image": ("x.png", png_bytes((128, 128))[:60], "image/png")})
    assert response.status_code == 400
    assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [(["image"], "image_rejected")]


def test_big_real_slice_is_answered(http, data_dir):
    """A real slice upscaled to 4096x4096 (within the pixel cap) is decoded at reduced scale and answered."""
    image = mri_test_image(data_dir, "glioma")
    with Image.open(image) as img:
        big = img.convert("L").resize((4096, 4096), Image.Resampling.BICUBIC)
    response = http.post(IMAGE, files={"image": ("big.jpg", _encode(big, "JPEG"), "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == []


def test_colour_png_too_large_to_decode_is_refused(http):
    """A 4096x4096 16-bit RGBA PNG of zeros (~130 KB) is refused from its header, before decoding."""
    response = http.post(IMAGE, files={"image": ("zeros.png", _encode(Image.new("RGBA", (4096, 4096))), "image/png")})
    assert response.status_code == 400, response.text
    [entry] = response.json()["detail"]
    assert entry["type"] == "image_rejected" and entry["msg"].startswith("decoding needs more than ")


@pytest.mark.parametrize("size", [256, 1024])
def test_a_dithered_bi_level_slice_is_refused(http, data_dir, size):
    """Regression (probe 4): a real slice dithered to 1 bit passed the screen (glioma at 0.94); resizing made it gray."""
    with Image.open(mri_test_image(data_dir, "glioma")) as img:
        bilevel = img.convert("L").resize((size, size)).convert("1")
    response = http.post(IMAGE, files={"image": ("b.png", _encode(bilevel), "image/png")})
    assert response.status_code == 400, response.text
    assert [(e["type"], e["msg"]) for e in response.json()["detail"]] == [
        ("not_an_mri_slice", "not an MRI slice: too few intensity levels")
    ]
