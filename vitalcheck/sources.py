"""The shared data sets' source formats: reading a file and building a model's catalog features.

Serving (the ``.../file`` upload endpoints) and batch scoring read files in a data set's own
format with the same parsing as training: missing-value codes, the blood-pressure split, stray
spaces in column names. Training (:mod:`vitalcheck.training.loaders`) adds the targets. An
untrusted file (an upload) is read under :class:`UploadLimits`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vitalcheck.catalog import TABULAR_MODELS, ModelSpec
from vitalcheck.errors import ColumnFormatError, MissingColumnError, SourceTooLarge

# Strings read as missing. "None" is deliberately absent: it is a class of the sleep data set.
NA_STRINGS = ["", "N/A", "NA", "n/a", "NaN", "nan"]


_TRUE = {"true": True, "yes": True, "1": True, "1.0": True, "false": False, "no": False, "0": False, "0.0": False}


def _norm(column: str) -> str:
    """Column-name key that ignores stray and doubled spaces ("Measles " → "Measles")."""
    return " ".join(str(column).split())


def read_csv(path: str | Path, **options: object) -> pd.DataFrame:
    """Read a source CSV with the data sets' missing-value codes; ``options`` are extra :func:`pandas.read_csv` arguments (the upload limits)."""
    raw = pd.read_csv(path, keep_default_na=False, na_values=NA_STRINGS, **options)
    raw.columns = [_norm(c) for c in raw.columns]
    return raw


def column(raw: pd.DataFrame, source: str, path: str | Path) -> pd.Series:
    """The source column ``source`` of ``raw`` (stray spaces ignored); raises :class:`MissingColumnError`."""
    key = _norm(source)
    if key not in raw.columns:
        raise MissingColumnError(path, source)
    return raw[key]


def _to_bool(series: pd.Series, name: str) -> pd.Series:
    """Map True/False, Yes/No, 1/0 (any case) to Python bool; missing → None."""

    def convert(value: object) -> bool | None:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        key = str(value).strip().lower()
        if key not in _TRUE:
            raise ValueError(f"column {name!r}: {value!r} is not a boolean (True/False, Yes/No, 1/0)")
        return _TRUE[key]

    out = series.map(convert).astype(object)
    if out.notna().all():
        return out.astype(bool)
    return out.where(out.notna(), None)


def _to_category(series: pd.Series) -> pd.Series:
    out = series.astype(object)
    return out.where(out.notna(), None).map(lambda v: v if v is None else str(v).strip())


def _features(
    raw: pd.DataFrame, spec: ModelSpec, path: str | Path, derived: dict[str, pd.Series] | None = None
) -> pd.DataFrame:
    """Build the catalog-named feature frame from a parsed source frame."""
    derived = derived or {}
    columns: dict[str, pd.Series] = {}
    for feat in spec.features:
        series = derived[feat.name] if feat.name in derived else column(raw, feat.source_column, path)
        try:
            columns[feat.name] = _convert(series, feat.type, feat.source_column)
        except (ValueError, TypeError, OverflowError) as exc:  # 309 digits overflow pandas' parser
            raise ColumnFormatError(path, feat.source_column, feat.type) from exc
    return pd.DataFrame(columns, index=raw.index)[spec.feature_names]


def _convert(series: pd.Series, kind: str, source_column: str) -> pd.Series:
    if kind in ("number", "integer"):
        series = pd.to_numeric(series, errors="raise").astype("float64")
        # Only where int64 holds them exactly: 1e19 would wrap to a negative number and be
        # refused for the wrong rule (probe 5); larger values stay float for validation to refuse.
        if (
            kind == "integer"
            and series.notna().all()
            and (series == series.round()).all()
            and (series.abs() < 2**53).all()
        ):
            series = series.astype("int64")
        return series
    if kind == "boolean":
        return _to_bool(series, source_column)
    return _to_category(series)


def _zero_is_missing(X: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    X = X.copy()
    for col in columns:
        X[col] = X[col].astype("float64").mask(X[col] == 0)
    return X


def _split_blood_pressure(raw: pd.DataFrame, spec: ModelSpec, path: str | Path) -> dict[str, pd.Series]:
    """The features whose catalog ``bp_part`` says their source column holds "systolic/diastolic"."""
    split = [f for f in spec.features if f.bp_part]
    if not split:
        return {}
    derived: dict[str, pd.Series] = {}
    for source in dict.fromkeys(f.source_column for f in split):
        bp = column(raw, source, path).astype(str).str.strip()
        parts = bp.str.extract(r"^(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)$")
        bad = bp[parts[0].isna()]
        if len(bad):
            raise ValueError(f"{path}: {source!r} values {sorted(set(bad))[:5]} are not 'systolic/diastolic'")
        for f in split:
            if f.source_column == source:
                derived[f.name] = parts[0 if f.bp_part == "systolic" else 1]
    return derived


def features_of(spec: ModelSpec, raw: pd.DataFrame, path: str | Path = "<upload>") -> pd.DataFrame:
    """Build the catalog features of any tabular record ``spec`` (see :func:`features`), e.g. a new task's."""
    raw = raw.rename(columns=_norm)
    X = _features(raw, spec, path, derived=_split_blood_pressure(raw, spec, path))
    zero_coded = [f.name for f in spec.features if f.zero_means_missing]
    return _zero_is_missing(X, zero_coded) if zero_coded else X


MAX_DECODED_BYTES = 16 << 20
"""Most bytes the columns a model reads from an uploaded Parquet file may decode to.

The largest legitimate upload is ``max_batch_records`` (10 000) rows of the widest model,
breast cancer: 30 float64 feature columns (+ id and diagnosis) = 2.6 MB decoded, 0.4 MB as
pandas writes it; the string-heaviest, sleep, decodes to under 4 MB. 16 MiB leaves a margin
of 4x and bounds what the pandas conversion and row validation that follow may multiply.
"""


MAX_CELL_BYTES = 1000
"""Longest text cell (bytes in Parquet, characters in CSV) an upload may hold in a column the model reads.

The request schema accepts at most 200 characters per text field (``str_max_length``), so a
longer cell can only be refused later; refusing it before conversion keeps 1 MiB strings
from being copied through pandas and validation.
"""


MAX_ROW_GROUPS = 64
"""Most row groups of an uploaded Parquet file (pandas writes one per million rows, so a legit upload has 1)."""


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on what an untrusted file may expand to while :func:`read_source` reads it.

    Attributes:
        max_rows: most data rows; reading stops after ``max_rows + 1`` so the caller can tell
            "too many" without the rest of the file being parsed.
        max_decoded_bytes: most bytes the Parquet columns read may decode to (strings counted
            at their expanded length, so a dictionary- or RLE-encoded column cannot multiply).
        max_row_groups: most Parquet row groups (each costs footer parsing and a read call).
        max_cell_bytes: longest Parquet string or binary cell in the columns read.

    """

    max_rows: int
    max_decoded_bytes: int
    max_row_groups: int = MAX_ROW_GROUPS
    max_cell_bytes: int = MAX_CELL_BYTES


_PARQUET_BATCH_ROWS = 1024


def source_columns(name: str) -> tuple[str, ...]:
    """The source columns :func:`features` reads for model ``name``, each once, in catalog order.

    Every feature is read from its catalog ``source_column``; the sleep model's systolic and
    diastolic pressures are both split from ``Blood Pressure``, which is their source column.
    Names are as in the source format (match them with stray spaces ignored, as
    :func:`features` does). Targets and other non-feature columns are not included.

    Raises:
        KeyError: ``name`` is not a tabular model.

    """
    return source_columns_of(TABULAR_MODELS[name])


def source_columns_of(spec: ModelSpec) -> tuple[str, ...]:
    """The source columns of any tabular record ``spec`` (see :func:`source_columns`), e.g. a new task's."""
    return tuple(dict.fromkeys(feat.source_column for feat in spec.features))


def _is_text(kind: pa.DataType) -> bool:
    return any(
        check(kind)
        for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    )


def parquet_columns(schema: pa.Schema, columns: Sequence[str] | None) -> list[str]:
    """The top-level Parquet columns :func:`read_source` reads for ``columns``: the matches and any stored index.

    ``columns`` are source names matched with stray spaces ignored; ``None`` means all of them.
    """
    if columns is None:
        return list(schema.names)
    wanted = {_norm(c) for c in columns}
    index = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
    return [n for n in schema.names if _norm(n) in wanted or n in index]


def repeated_columns(names: Sequence[str], columns: Sequence[str]) -> list[str]:
    """The source ``columns`` that appear more than once among a file's column ``names`` (stray spaces ignored).

    pandas renames a repeated CSV column (``age``, ``age.1``) and Parquet keeps both, so which
    copy a model would read is arbitrary: an upload with a repeated source column is refused.
    """
    wanted = {_norm(c): c for c in columns}
    seen = Counter(_norm(n) for n in names)
    return [wanted[n] for n, count in seen.items() if count > 1 and n in wanted]


def _check_parquet(path: str | Path, limits: UploadLimits, read: list[str]) -> None:
    """Stream the columns ``read`` of a Parquet file batch by batch under running caps; keeps nothing.

    The footer's row-group count and the read columns' uncompressed chunk sizes are checked
    first. String and binary columns are read dictionary-encoded, and their size is the sum of
    the lengths their rows expand to, computed without expanding them; their longest value is
    checked against ``max_cell_bytes`` before any conversion.
    """
    meta = pq.read_metadata(path)
    if meta.num_row_groups > limits.max_row_groups:
        raise SourceTooLarge("too_many_row_groups")
    schema = pq.read_schema(path)
    for name in read:
        kind = schema.field(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_nested(kind):
            raise SourceTooLarge("unsupported_column_type")
    wanted = set(read)
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        chunks = (group.column(j) for j in range(group.num_columns))
        if sum(c.total_uncompressed_size for c in chunks if c.path_in_schema in wanted) > limits.max_decoded_bytes:
            raise SourceTooLarge("too_many_bytes")
    strings = [name for name in read if _is_text(schema.field(name).type)]
    reader = pq.ParquetFile(path, read_dictionary=strings, metadata=meta)
    rows = size = 0
    for batch in reader.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=read, use_threads=False):
        rows += batch.num_rows
        if rows > limits.max_rows:
            raise SourceTooLarge("too_many_rows")
        longest = 0
        for column in batch.columns:
            if pa.types.is_dictionary(column.type) and _is_text(column.type.value_type):
                lengths = pc.binary_length(column.dictionary)
                size += (pc.sum(pc.take(lengths, column.indices)).as_py() or 0) + 8 * len(column)
                longest = max(longest, pc.max(lengths).as_py() or 0)
            else:
                size += column.nbytes
                if _is_text(column.type):
                    longest = max(longest, pc.max(pc.binary_length(column)).as_py() or 0)
        if size > limits.max_decoded_bytes:
            raise SourceTooLarge("too_many_bytes")
        if longest > limits.max_cell_bytes:
            raise SourceTooLarge("cell_too_long")


def read_source(
    path: str | Path, limits: UploadLimits | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a CSV or Parquet file in a data set's source format, with its missing-value codes.

    Parquet is recognised by its magic bytes; anything else is read as CSV with the loaders'
    missing-value strings. Column names are normalised (stray and doubled spaces removed).

    Args:
        path: the file.
        limits: set for an untrusted file (an upload). CSV is then read uncompressed whatever
            the file name (pandas would otherwise pick a decompressor from a ``.gz``/``.zip``
            suffix), at most ``max_rows + 1`` rows, and never with an implicit index (a row
            wider than the header cannot turn its extra fields into index levels). Parquet is
            first streamed under the row-group, row, decoded-byte and cell-length caps.
            ``None`` (training): as before.
        columns: read only these source columns (e.g. :func:`source_columns`), matched with
            stray spaces ignored; others are never decoded. A column absent from the file is
            simply not in the frame (:func:`features` then names it). When none is present the
            frame has no columns (a CSV one then has no rows either). ``None``: every column.

    Raises:
        SourceTooLarge: the file breaks ``limits``.
        ValueError: the file is neither readable Parquet nor CSV.
    """
    with open(path, "rb") as fh:
        is_parquet = fh.read(4) == b"PAR1"
    if not is_parquet:
        options: dict[str, object] = {}
        if columns is not None:
            wanted = {_norm(c) for c in columns}
            options["usecols"] = lambda column: _norm(column) in wanted
        if limits is None:
            return read_csv(path, **options)
        return read_csv(path, compression=None, index_col=False, nrows=limits.max_rows + 1, **options)
    read = None
    if limits is not None or columns is not None:
        read = parquet_columns(pq.read_schema(path), columns)
        if limits is not None:
            _check_parquet(path, limits, read)
    raw = pd.read_parquet(path) if columns is None else pd.read_parquet(path, columns=read)
    raw.columns = [_norm(c) for c in raw.columns]
    return raw


def features(name: str, raw: pd.DataFrame, path: str | Path = "<upload>") -> pd.DataFrame:
    """Build model ``name``'s catalog features from a frame in the source format (target optional).

    Applies the catalog's source-format rules, the same for training and serving: missing-value
    codes (``zero_means_missing`` features), the blood-pressure split (``bp_part``), stray spaces
    in column names.

    Args:
        name: tabular model name (catalog key).
        raw: frame as read by :func:`read_source` (source column names).
        path: name used in error messages.

    Returns:
        DataFrame of shape (n_rows, n_features), catalog feature names in pipeline order.

    Raises:
        MissingColumnError: a required source column is absent.
        ValueError: a value cannot be parsed in its documented format.
    """
    return features_of(TABULAR_MODELS[name], raw, path)
