"""Helpers of the batch-scoring tests: the service's answers for rows in source format, and row comparison."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pandas as pd
import pytest

from vitalcheck import sources
from vitalcheck.batch.scoring import INPUT_MODELS
from vitalcheck.predictors.tabular import class_column

FLOAT_TOLERANCE = 1e-9
"""Scores may differ in the last bits between batch compositions (BLAS paths), as in tests/http."""

_PREFIX = re.compile(r"^records\[(\d+)\](\.|: )(.*)$", re.S)


def service_answers(api, name: str, raw: pd.DataFrame, chunk: int = 10_000) -> list[dict]:
    """The service's answers for rows in source format, as batch output columns (one dict per row).

    What ``POST <route>/file`` does (parse with the loaders, validate with the request model,
    ``VitalCheckAPI.batch``), in chunks of the service's largest batch; every row must be valid.
    """
    features = sources.features(name, raw.reset_index(drop=True))
    rows = features.astype(object).where(features.notna(), None).to_dict("records")
    answers: list[dict] = []
    for start in range(0, len(rows), chunk):
        records = [INPUT_MODELS[name].model_validate(r) for r in rows[start : start + chunk]]
        envelope = api.batch(name, records)
        warnings: list[list[str]] = [[] for _ in records]
        for message in envelope.warnings:
            index, separator, text = _PREFIX.match(message).groups()
            warnings[int(index)].append(text if separator == "." else "record: " + text)  # a whole-record warning
        for prediction, warned in zip(envelope.predictions, warnings, strict=True):
            answer = prediction.model_dump(mode="json")
            answer.pop("explanation", None)  # files carry the top-5 contributors, not the full explanation
            answer.pop("explanations", None)
            row = {"contributors": answer.pop("contributors"), "warnings": warned, "model_tag": envelope.model.tag}
            if "probabilities" in answer:
                row.update({class_column(c): p for c, p in answer.pop("probabilities").items()})
            row.update(answer)
            answers.append(row)
    return answers


def assert_rows_equal(scored: pd.DataFrame, expected: Sequence[dict], tol: float = FLOAT_TOLERANCE) -> None:
    """Every scored row equals the service's answer: numbers within ``tol``, strings and lists exactly.

    Contributors must name the same features in the same order with the same values, and
    contributions within ``tol``; warnings must be the same messages; no row has an error.
    """
    assert len(scored) == len(expected)
    assert scored["error"].isna().all(), scored.loc[scored["error"].notna(), "error"].head().tolist()
    for i, (row, want) in enumerate(zip(scored.to_dict("records"), expected, strict=True)):
        for key, value in want.items():
            got = row[key]
            if key == "contributors":
                got = json.loads(got)
                assert [(c["feature"], c["value"]) for c in got] == [(c["feature"], c["value"]) for c in value], i
                for g, w in zip(got, value, strict=True):
                    assert g["contribution"] == pytest.approx(w["contribution"], abs=tol), (i, g, w)
            elif key == "warnings":
                assert json.loads(got) == value, i
            elif isinstance(value, float):
                assert got == pytest.approx(value, abs=tol), (i, key)
            else:
                assert got == value, (i, key)
