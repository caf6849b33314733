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
