"""The requests every contender receives: built once per run, written to files, replayed by ``wrk``.

All bodies are real data: the schema examples of all seven tabular models (``MODELS[name].example``:
real records from the shared data sets), one real test-split brain MRI slice, and records sampled
from the data sets for the batches.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

MRI_TEST_IMAGE = ("glioma", 0)
"""Which shared test image is uploaded: class folder and index in sorted order."""

BATCH_MODEL = "diabetes"
"""Tabular model used for the 1,000-record batch workload and for batch scoring."""

SINGLE_TITLES = {
    "diabetes": "diabetes risk",
    "heart": "heart disease risk",
    "stroke": "stroke risk",
    "breast_cancer": "breast cancer malignancy risk",
    "sleep": "sleep disorder class (3 classes)",
    "life_expectancy": "life expectancy in years",
    "insurance": "insurance charges with 90 % interval",
}
"""Report titles of the single-record workloads: one per tabular model, in catalog order."""


@dataclass(frozen=True)
class Workload:
    """One kind of request.

    Attributes:
        name: short key used in results and plots.
        title: human-readable description for the report.
        method: HTTP method.
        path: route, identical on every contender.
        body_file: file holding the exact request body ('' for none).
        content_type: the request's Content-Type ('' for none).
        kind: 'single', 'image', 'batch' or 'trivial'.
        records: records per request (1 except batches).

    """

    name: str
    title: str
    method: str
    path: str
    body_file: str
    content_type: str
    kind: str
    records: int = 1

    def body(self) -> bytes:
        """The request body as bytes (empty when there is none)."""
        return Path(self.body_file).read_bytes() if self.body_file else b""


def sample_records(name: str, n: int, data_dir: Path, seed: int = 0) -> list[dict]:
    """``n`` real records of tabular model ``name`` (sampled with replacement), JSON-ready.

    Args:
        name: catalog name of a tabular model.
        n: number of records.
        data_dir: the shared data sets folder.
        seed: sampling seed, fixed so every run sends the same requests.

    Returns:
        Records keyed by the catalog feature names, missing values as ``None``.

    """
    from vitalcheck.training.loaders import data_file, load

    features, _ = load(name, data_file(name, data_dir))
    rows = features.sample(n, replace=True, random_state=seed)
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in records]


def multipart(field: str, path: Path, content_type: str) -> tuple[bytes, str]:
    """Encode one file as a ``multipart/form-data`` body.

    Returns:
        The body and its Content-Type header value (with the boundary).

    """
    boundary = f"vitalcheck-bench-{uuid.uuid4().hex}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def build(out_dir: Path, data_dir: Path, batch_records: int = 1000) -> dict[str, Workload]:
    """Write every request body to ``out_dir`` and describe the workloads.

    Args:
        out_dir: folder for the body files.
        data_dir: the shared data sets folder (MRI test image, batch records).
        batch_records: records in the batch workload's request.

    Returns:
        Workloads by name, in report order.

    """
    from vitalcheck.catalog import TABULAR_MODELS

    out_dir.mkdir(parents=True, exist_ok=True)
    json_type = "application/json"

    def write(name: str, body: bytes) -> str:
        path = out_dir / f"{name}.body"
        path.write_bytes(body)
        return str(path)

    label, index = MRI_TEST_IMAGE
    image = sorted((data_dir / "brain_mri" / "test" / label).glob("*.jpg"))[index]
    image_body, image_type = multipart("image", image, "image/jpeg")
    batch = {"records": sample_records(BATCH_MODEL, batch_records, data_dir)}
    workloads = [
        Workload("livez", "trivial endpoint (GET /livez): HTTP only", "GET", "/livez", "", "", "trivial", 0),
        *(
            Workload(
                name,
                f"{SINGLE_TITLES[name]}, one record (JSON)",
                "POST",
                spec.route,
                write(name, json.dumps(spec.example).encode()),
                json_type,
                "single",
            )
            for name, spec in TABULAR_MODELS.items()
        ),
        Workload(
            "mri",
            f"brain MRI slice upload ({image.parent.name}/{image.name}, {image.stat().st_size // 1024} KiB JPEG)",
            "POST",
            "/api/v1/imaging/brain-tumor",
            write("mri", image_body),
            image_type,
            "image",
        ),
        Workload(
            "batch1000",
            f"{BATCH_MODEL} batch of {batch_records} records (JSON)",
            "POST",
            f"/api/v1/risk/{BATCH_MODEL}/batch",
            write("batch1000", json.dumps(batch).encode()),
            json_type,
            "batch",
            batch_records,
        ),
    ]
    return {w.name: w for w in workloads}
