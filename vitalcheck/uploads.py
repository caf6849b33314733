"""Uploaded CSV and Parquet files: what is checked before pandas parses them, and how.

A file's shape can make parsing it a denial of service (compressed bombs, millions of rows or
columns in a few kB, a 1 MiB quoted header cell). :func:`check_shape` refuses such a file from
its first bytes or its Parquet footer; :func:`scan_csv` streams a CSV once, bounded per record,
before pandas reads it. Used by :meth:`vitalcheck.api.VitalCheckAPI.file`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vitalcheck import sources
from vitalcheck.errors import InvalidInput
from vitalcheck.parquet_pages import PageHeaderError, declared_page_bytes
from vitalcheck.settings import Settings

UNPACKED_PARQUET_FACTOR = 4
"""The columns read from an uploaded Parquet file may decode to at most this many times
VITALCHECK_MAX_UPLOAD_BYTES, and never to more than :data:`sources.MAX_DECODED_BYTES` (16 MiB)."""

PARQUET_FOOTER_MAX_BYTES = 2 << 20
"""Longest accepted Parquet footer (parsing one costs about 10x its size); pandas writes ~18 kB for 32 columns."""


def decoded_cap(settings: Settings) -> int:
    """Most bytes the model's columns of an uploaded Parquet file may decode to."""
    return min(sources.MAX_DECODED_BYTES, UNPACKED_PARQUET_FACTOR * settings.max_upload_bytes)


def check_shape(path: Path, columns: Sequence[str], settings: Settings) -> bool:
    """Refuse, before parsing, a file whose shape would make parsing it a denial of service.

    A Parquet file of a few kB can hold tens of millions of rows (or highly compressible
    strings), a 2 MB gzip file can hold 4 million CSV rows, and a 20 MB CSV header can
    declare millions of columns; reading any of them takes minutes and gigabytes. A
    compressed upload (recognised by its magic bytes, never its name) is refused; the
    Parquet footer gives rows, columns and uncompressed size; a CSV's header record,
    parsed with its quoting and at most ``CSV_HEADER_MAX_BYTES`` long, gives its columns, and
    the first data row may not be wider. A Parquet footer is refused over
    ``PARQUET_FOOTER_MAX_BYTES`` before it is parsed, then with more than
    ``sources.MAX_ROW_GROUPS`` row groups, or when the model's ``columns`` (the only ones
    read) are declared to decode to more than the decoded-byte cap.

    Returns:
        whether the file is Parquet (else it is read as CSV).

    Raises:
        InvalidInput: the rule the file breaks, at ``loc: ["file"]``.
    """
    limits = settings
    with open(path, "rb") as fh:
        head = fh.read(CSV_HEADER_MAX_BYTES + 1)
    compression = _compression_of(head)
    if compression is not None:
        message = f"{compression}-compressed files are not accepted: upload plain CSV or Parquet"
        raise InvalidInput.at("file", "compressed_upload", message)
    is_parquet = head[:4] == b"PAR1"
    if is_parquet:
        if _parquet_footer_length(path) > PARQUET_FOOTER_MAX_BYTES:
            message = f"the Parquet footer is longer than {PARQUET_FOOTER_MAX_BYTES} bytes"
            raise InvalidInput.at("file", "footer_too_large", message)
        try:
            meta = pq.read_metadata(path)
            read = set(sources.parquet_columns(meta.schema.to_arrow_schema(), columns))
        except Exception:
            raise InvalidInput.at("file", "file_unreadable", "not a readable CSV or Parquet file") from None
        n_columns, names = meta.num_columns, meta.schema.to_arrow_schema().names
        if meta.num_row_groups > sources.MAX_ROW_GROUPS:
            message = f"more than {sources.MAX_ROW_GROUPS} Parquet row groups"
            raise InvalidInput.at("file", "too_many_row_groups", message)
        if meta.num_rows > limits.max_batch_records:
            raise InvalidInput.at("file", "too_many_rows", f"more than {limits.max_batch_records} rows")
        unpacked = sum(
            group.column(j).total_uncompressed_size
            for group in (meta.row_group(i) for i in range(meta.num_row_groups))
            for j in range(group.num_columns)
            if group.column(j).path_in_schema in read
        )
        try:
            # The footer's sizes are the writer's claim; the page headers say what is decompressed.
            unpacked = max(unpacked, declared_page_bytes(path, read, decoded_cap(settings)))
        except (PageHeaderError, OSError):
            raise InvalidInput.at("file", "file_unreadable", "not a readable CSV or Parquet file") from None
        if unpacked > decoded_cap(settings):
            message = f"decompresses to more than {decoded_cap(settings)} bytes"
            raise InvalidInput.at("file", "upload_too_large", message)
    else:
        header = _csv_record_fields(head)
        if header is None:
            message = f"header row longer than {CSV_HEADER_MAX_BYTES} bytes"
            raise InvalidInput.at("file", "header_too_long", message)
        n_columns, header_end = header
    if n_columns > limits.max_upload_columns:
        raise InvalidInput.at("file", "too_many_columns", f"more than {limits.max_upload_columns} columns")
    if not is_parquet:
        names = next(csv.reader(io.StringIO(head[:header_end].decode("utf-8", "replace").lstrip())), [])
    repeated = sources.repeated_columns(names, columns)
    if repeated:
        # A documented source column's name, never a value.
        raise InvalidInput.at("file", "repeated_column", f"column {repeated[0]!r} appears more than once")
    if not is_parquet:
        # pandas takes the first data row's width as the width of every row (refusing any
        # wider row at once), so a first row wider than the header would make it read
        # every field of every row: check that one row here.
        first_row = _csv_record_fields(head, header_end)
        if header_end < len(head) and first_row is None:
            message = f"the first data row is longer than {CSV_HEADER_MAX_BYTES} bytes"
            raise InvalidInput.at("file", "row_too_long", message)
        if first_row is not None and first_row[0] > n_columns:
            raise InvalidInput.at("file", "row_too_wide", "a row has more fields than the header")
    return is_parquet


CSV_HEADER_MAX_BYTES = 64 * 1024
"""Longest accepted CSV header record (leading blank lines included); the data sets' are under 1 KiB."""

_COMPRESSED_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x1f\x9d", "compress"),
    (b"\x1f\xa0", "compress"),
    (b"LZIP", "lzip"),
    (b"\xff\x06\x00\x00sNaPpY", "snappy"),
)
"""Leading bytes of the compressed and archive formats (pandas alone decompresses five of them)."""


def _compression_of(head: bytes) -> str | None:
    """The compression format a file's first bytes announce, or None for an uncompressed file."""
    for magic, kind in _COMPRESSED_MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 4 and 0x50 <= head[0] <= 0x5F and head[1:4] == b"\x2a\x4d\x18":
        return "zstd"  # a zstd skippable frame (may precede the data frame)
    return None


_BLANK_LINE = re.compile(rb"[ \t]*(?:\r\n|\r|\n)")
_CSV_SPECIAL = re.compile(rb'[",\r\n]')


def _csv_record_fields(head: bytes, pos: int = 0) -> tuple[int, int] | None:
    """Field count and end of the CSV record starting at ``pos`` in ``head``, as pandas' C parser reads it.

    Leading blank (or whitespace-only) lines are skipped as pandas skips them; quoted fields may
    hold commas, doubled quotes and line breaks; a quote opens a quoted field only at the start
    of a field. ``head`` is the file's first ``CSV_HEADER_MAX_BYTES + 1`` bytes.

    Returns:
        (number of fields, offset just past the record), or None when the record does not
        end within ``CSV_HEADER_MAX_BYTES`` bytes and the file goes on.

    """
    complete = len(head) <= CSV_HEADER_MAX_BYTES  # the whole file is in ``head``
    buf = head[:CSV_HEADER_MAX_BYTES]
    while match := _BLANK_LINE.match(buf, pos):
        pos = match.end()
    columns, field_start, in_quotes = 1, pos, False
    while pos < len(buf):
        if in_quotes:
            quote = buf.find(b'"', pos)
            if quote < 0 or (quote + 1 == len(buf) and not complete):
                break
            if buf[quote + 1 : quote + 2] == b'"':
                pos = quote + 2
                continue
            in_quotes, pos = False, quote + 1
            continue
        match = _CSV_SPECIAL.search(buf, pos)
        if match is None:
            break
        char, pos = match.group(), match.end()
        if char == b",":
            columns, field_start = columns + 1, pos
        elif char == b'"':
            in_quotes = match.start() == field_start
        else:
            if char == b"\r" and buf[pos : pos + 1] == b"\n":
                pos += 1
            return columns, pos
    return (columns, len(buf)) if complete else None


def _parquet_footer_length(path: Path) -> int:
    """The footer length a Parquet file's last 8 bytes declare (0 when the file is too short to tell)."""
    with open(path, "rb") as fh:
        if fh.seek(0, 2) < 12:
            return 0
        fh.seek(-8, 2)
        return int.from_bytes(fh.read(4), "little")


def source_refusal(rule: str, limits: sources.UploadLimits) -> tuple[str, str]:
    """The (rule, message) of a :class:`sources.SourceTooLarge` refusal."""
    if rule == "too_many_bytes":
        return "upload_too_large", f"decompresses to more than {limits.max_decoded_bytes} bytes"
    messages = {
        "too_many_rows": f"more than {limits.max_rows} rows",
        "too_many_row_groups": f"more than {limits.max_row_groups} Parquet row groups",
        "cell_too_long": f"a cell is longer than {limits.max_cell_bytes} bytes",
        "unsupported_column_type": "a column the model reads has a nested Parquet type (list, struct or map)",
    }
    return rule, messages[rule]


CSV_CELL_MAX_CHARS = sources.MAX_CELL_BYTES
"""Longest data cell of an uploaded CSV, in characters (the schema accepts 200 per text field)."""

_LONG_PLAIN_CELL = re.compile(f"[^,\r\n]{{{CSV_CELL_MAX_CHARS + 1}}}")


class _CsvLines:
    """The lines of a CSV file for :func:`_scan_csv`: each record at most ``CSV_HEADER_MAX_BYTES`` long, no NUL."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.pushed: str | None = None  # a line already read (and checked), handed to csv.reader next
        self.record = 0  # characters of the current record so far

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        if self.pushed is not None:
            line, self.pushed = self.pushed, None
            return line
        line = self.fh.readline(CSV_HEADER_MAX_BYTES + 1)
        if not line:
            raise StopIteration
        if "\x00" in line:
            raise InvalidInput.at("file", "nul_byte", "the file holds a NUL byte")
        self.record += len(line)
        if self.record > CSV_HEADER_MAX_BYTES:
            raise InvalidInput.at("file", "row_too_long", f"a row is longer than {CSV_HEADER_MAX_BYTES} bytes")
        return line


def scan_csv(path: Path, max_rows: int) -> int:
    """Stream every record of an uploaded CSV once, in bounded memory, before pandas parses it.

    The records are those pandas' C parser reads (comma, double-quote quoting with doubled
    quotes, CR/LF/CRLF, a UTF-8 byte-order mark, blank lines skipped). A line without a quote
    is checked as text (fields = commas + 1, a run of over ``CSV_CELL_MAX_CHARS`` non-commas is
    a long cell); one with a quote is parsed by :mod:`csv` (its default field limit, 128 KiB,
    is left alone: it is process-wide, and no record may exceed 64 KiB anyway).

    Returns:
        the number of data records (after the header record).

    Raises:
        InvalidInput: ``row_too_long`` (a record over ``CSV_HEADER_MAX_BYTES``), ``nul_byte``,
            ``row_too_wide`` (more fields than the header), ``cell_too_long``, ``too_many_rows``
            (stops at ``max_rows + 1`` records), ``file_unreadable`` (not UTF-8).

    """
    header = None
    rows = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            lines = _CsvLines(fh)
            reader = csv.reader(lines, strict=False)
            blank = 0
            while True:
                lines.record = 0
                line = next(lines, None)
                if line is None:
                    break
                if '"' in line:
                    lines.pushed = line
                    fields = next(reader, [])
                    width, longest = len(fields), max(map(len, fields), default=0)
                elif not line.strip():
                    blank += 1  # pandas skips blank lines, but each still costs it time
                    if blank > max_rows:
                        raise InvalidInput.at("file", "too_many_blank_lines", f"more than {max_rows} blank lines")
                    continue
                else:
                    body = line.rstrip("\r\n")
                    width = body.count(",") + 1
                    longest = CSV_CELL_MAX_CHARS + 1 if _LONG_PLAIN_CELL.search(body) else 0
                if header is None:
                    header = width
                    continue
                rows += 1
                if rows > max_rows:
                    raise InvalidInput.at("file", "too_many_rows", f"more than {max_rows} rows")
                if width > header:
                    raise InvalidInput.at("file", "row_too_wide", "a row has more fields than the header")
                if longest > CSV_CELL_MAX_CHARS:
                    message = f"a cell is longer than {CSV_CELL_MAX_CHARS} characters"
                    raise InvalidInput.at("file", "cell_too_long", message)
    except (UnicodeDecodeError, csv.Error):
        raise InvalidInput.at("file", "file_unreadable", "not a readable CSV or Parquet file") from None
    return rows
