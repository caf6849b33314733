"""Request payloads shared by the HTTP, in-process and integration tests."""

import io
from pathlib import Path

from PIL import Image

from vitalcheck.schemas import breast_cancer, diabetes, heart, insurance, life_expectancy, sleep, stroke

ROUTES = {
    "diabetes": "/api/v1/risk/diabetes",
    "heart": "/api/v1/risk/heart",
    "stroke": "/api/v1/risk/stroke",
    "breast_cancer": "/api/v1/risk/breast-cancer",
    "sleep": "/api/v1/sleep",
    "life_expectancy": "/api/v1/life-expectancy",
    "insurance": "/api/v1/insurance",
}
"""Route of each tabular model's single-record endpoint (batch: + /batch, file upload: + /file)."""

EXAMPLES = {
    "diabetes": diabetes.EXAMPLE,
    "heart": heart.EXAMPLE,
    "stroke": stroke.EXAMPLE,
    "breast_cancer": breast_cancer.EXAMPLE,
    "sleep": sleep.EXAMPLE,
    "life_expectancy": life_expectancy.EXAMPLE,
    "insurance": insurance.EXAMPLE,
}

BINARY = ("diabetes", "heart", "stroke", "breast_cancer")


def png_bytes(size=(64, 64), mode="L") -> bytes:
    """A small synthetic PNG."""
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def mri_test_image(data_dir: Path, label: str = "glioma") -> Path:
    """The first shared test-split image of a class."""
    return sorted((data_dir / "brain_mri" / "test" / label).glob("*.jpg"))[0]


def assert_close(got, want, abs_tol: float = 1e-12, where: str = "") -> None:
    """Assert two JSON-like values are equal, floats within ``abs_tol`` (same keys, lengths and order)."""
    import pytest

    if isinstance(got, dict):
        assert isinstance(want, dict) and got.keys() == want.keys(), where
        for key in got:
            assert_close(got[key], want[key], abs_tol, f"{where}.{key}")
    elif isinstance(got, list | tuple):
        assert isinstance(want, list | tuple) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_close(a, b, abs_tol, f"{where}[{i}]")
    elif isinstance(got, float) or isinstance(want, float):
        assert got == pytest.approx(want, rel=0, abs=abs_tol), where
    else:
        assert got == want, where
