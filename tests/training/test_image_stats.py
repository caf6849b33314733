"""The MRI validity screen's thresholds are reproducible from the data (``python -m vitalcheck.training image-stats``)."""

from __future__ import annotations

import json
import math

import pytest

from tests.utils.images import phantom_slice
from vitalcheck.imaging import SLICE_VALIDITY
from vitalcheck.training import image_stats
from vitalcheck.training.__main__ import main


@pytest.fixture
def tiny_set(tmp_path):
    """A three-image brain_mri folder in the shared format (two train, one test)."""
    folder = tmp_path / "brain_mri"
    rows = ["path,label,split,source"]
    for i, split in enumerate(("train", "train", "test")):
        (folder / split / "glioma").mkdir(parents=True, exist_ok=True)
        phantom_slice(seed=i).save(folder / split / "glioma" / f"{i}.jpg", format="JPEG")
        rows.append(f"{split}/glioma/{i}.jpg,glioma,{split},synthetic")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_cli_reports_statistics_central_range_and_screen(tiny_set, capsys):
    out = tiny_set / "stats.json"
    assert main(["image-stats", "--data-dir", str(tiny_set), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert set(printed["derived_central"]) == {name for name, _, _ in SLICE_VALIDITY.central}
    assert printed["derived_central"]["relative_range"][1] is None
    assert printed["screen"]["train"] == {
        "n": 2,
        "refused": 0,
        "refused_by_rule": {},
        "warned": 0,
        "warned_by_reason": {},
    }
    assert printed["screen"]["test"]["n"] == 1
    assert printed["cost_test_split"]["screen_ms"] > 0


def test_cli_missing_data_is_an_error(tmp_path, capsys):
    assert main(["image-stats", "--data-dir", str(tmp_path)]) == 1
    assert "manifest.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_recorded_thresholds_are_reproduced_from_the_train_slices(data_dir):
    """The recorded central range is the train split's 0.1-99.9 % quantiles; no real slice is refused."""
    report = image_stats.report(data_dir)
    assert report["recorded_central_matches"], report["derived_central"]
    train, test = report["screen"]["train"], report["screen"]["test"]
    assert train["n"] == 3651 and test["n"] == 593
    assert train["refused"] == 0 and test["refused"] == 0
    assert train["warned"] <= 0.02 * train["n"] and test["warned"] <= 0.02 * test["n"]
    q = report["train_quantiles"]
    # each refusal threshold lies beyond the training extreme
    assert SLICE_VALIDITY.min_relative_range < q["relative_range"]["q0"]
    assert SLICE_VALIDITY.min_entropy_bits < q["entropy_bits"]["q0"]
    assert SLICE_VALIDITY.max_roughness > q["roughness"]["q100"]
    assert SLICE_VALIDITY.max_mean > q["mean"]["q100"]
    assert SLICE_VALIDITY.max_colourfulness > q["colourfulness"]["q100"]
    assert SLICE_VALIDITY.min_side_px < min(q["width"]["q0"], q["height"]["q0"])
    assert all(math.isfinite(v) for stats in q.values() for v in stats.values())
