"""Reading and validating a reference table's Parquet file, shared by both tables' loaders.

A broken table must stop the service at start-up rather than make it answer wrongly, so every
problem becomes an error naming the file and the problem.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = "1"
"""Value of the ``vitalcheck.schema_version`` Parquet metadata key both tables carry."""


def _read_parquet(path: Path | str, what: str) -> pa.Table:
    """Read a Parquet file, turning a missing or unreadable file into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} table not found (build it with vitalcheck.training.reference_tables)")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot read the {what} table as Parquet: {exc}") from exc


def _type_ok(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a stored Arrow type is acceptable for the expected one."""
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    return actual.equals(expected)


def _validate_schema(path: Path | str, table: pa.Table, expected: pa.Schema, what: str) -> None:
    """Check required columns, their types, nulls and that the table has rows."""
    missing = [name for name in expected.names if name not in table.schema.names]
    if missing:
        raise ValueError(f"{path}: {what} table is missing column(s) {missing}")
    wrong = [
        f"{field.name} ({table.schema.field(field.name).type}, expected {field.type})"
        for field in expected
        if not _type_ok(table.schema.field(field.name).type, field.type)
    ]
    if wrong:
        raise ValueError(f"{path}: {what} table has column(s) of the wrong type: {', '.join(wrong)}")
    if table.num_rows == 0:
        raise ValueError(f"{path}: {what} table is empty (0 rows)")
    nulls = [f.name for f in expected if not f.nullable and table.column(f.name).null_count > 0]
    if nulls:
        raise ValueError(f"{path}: {what} table has null values in column(s) {nulls}")


def _metadata(table: pa.Table) -> dict[str, str]:
    """Return the table's Parquet schema metadata decoded to ``str`` (Arrow's pandas entry left out)."""
    raw = table.schema.metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if k != b"pandas"}
