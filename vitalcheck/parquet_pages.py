"""The page sizes a Parquet column chunk declares, read from its page headers before any page is decompressed.

A Parquet footer's ``total_uncompressed_size`` is the writer's claim: a 12 KB file whose footer
says 1,000 bytes held one zstd page of 400 MB, and reading it cost a worker 1.1 GB (probe 4).
Each page header states that page's own uncompressed size, and the decompressor allocates
exactly that, so :func:`declared_page_bytes` sums the headers' sizes (reading only the headers,
Thrift compact protocol) and the upload is refused before a page is decoded. pyarrow exposes no
page headers and no page-size limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

MAX_PAGES = 4096
"""Most pages the columns read from one upload may have (pandas writes about 1 per MiB per column)."""

_HEADER_READ = 4096
_HEADER_MAX = 64 * 1024
_MAX_DEPTH = 16


class PageHeaderError(ValueError):
    """A page header that cannot be read (truncated, malformed or too deep)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise PageHeaderError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _skip(buf: bytes, pos: int, kind: int, depth: int) -> int:
    """Skip one value of compact type ``kind`` (as in a field header) starting at ``pos``."""
    if depth > _MAX_DEPTH:
        raise PageHeaderError("nested too deep")
    if kind in (1, 2):  # booleans live in the field header
        return pos
    if kind == 3:
        return pos + 1
    if kind in (4, 5, 6):
        return _varint(buf, pos)[1]
    if kind == 7:
        return pos + 8
    if kind == 8:
        length, pos = _varint(buf, pos)
        return pos + length
    if kind in (9, 10):  # list, set
        if pos >= len(buf):
            raise PageHeaderError("truncated list")
        head, pos = buf[pos], pos + 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(buf, pos)
        for _ in range(size):
            pos = pos + 1 if element in (1, 2) else _skip(buf, pos, element, depth + 1)
        return pos
    if kind == 11:  # map
        size, pos = _varint(buf, pos)
        if size:
            if pos >= len(buf):
                raise PageHeaderError("truncated map")
            kinds, pos = buf[pos], pos + 1
            for _ in range(size):
                pos = _skip(buf, pos, kinds >> 4, depth + 1)
                pos = _skip(buf, pos, kinds & 0x0F, depth + 1)
        return pos
    if kind == 12:
        return _struct(buf, pos, depth + 1)[1]
    raise PageHeaderError(f"unknown compact type {kind}")


def _struct(buf: bytes, pos: int, depth: int) -> tuple[dict[int, int], int]:
    """Read a struct; returns its top-level i32 fields (id → value) and the position after it."""
    fields: dict[int, int] = {}
    field_id = 0
    while True:
        if pos >= len(buf):
            raise PageHeaderError("truncated struct")
        head, pos = buf[pos], pos + 1
        if head == 0:
            return fields, pos
        delta, kind = head >> 4, head & 0x0F
        if delta:
            field_id += delta
        else:
            raw, pos = _varint(buf, pos)
            field_id = _zigzag(raw)
        if kind == 5 and depth == 0:
            raw, pos = _varint(buf, pos)
            fields[field_id] = _zigzag(raw)
        else:
            pos = _skip(buf, pos, kind, depth)
        if pos > len(buf):
            raise PageHeaderError("truncated struct")


def _page_header(fh, offset: int) -> tuple[int, int, int]:
    """(uncompressed size, compressed size, header length) of the page header at ``offset``."""
    size = _HEADER_READ
    while True:
        fh.seek(offset)
        buf = fh.read(size)
        try:
            fields, length = _struct(buf, 0, 0)
            break
        except PageHeaderError:
            if size >= _HEADER_MAX or len(buf) < size:
                raise
            size *= 4
    uncompressed, compressed = fields.get(2), fields.get(3)  # PageHeader fields 2 and 3 (i32)
    if uncompressed is None or compressed is None or uncompressed < 0 or compressed < 0:
        raise PageHeaderError("page header without sizes")
    return uncompressed, compressed, length


def declared_page_bytes(path: str | Path, columns: Iterable[str], limit: int) -> int:
    """Sum of the uncompressed sizes the page headers of ``columns`` declare, stopping once past ``limit``.

    Args:
        path: a Parquet file (its footer already checked to be small).
        columns: top-level column names (``path_in_schema``) whose pages count.
        limit: stop reading headers once the sum exceeds it (the caller refuses the file).

    Returns:
        The sum (greater than ``limit`` when the file is to be refused).

    Raises:
        PageHeaderError: a header is unreadable, or the columns have more than :data:`MAX_PAGES` pages.

    """
    wanted = set(columns)
    meta = pq.read_metadata(path)
    total = pages = 0
    with open(path, "rb") as fh:
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            for j in range(group.num_columns):
                chunk = group.column(j)
                if chunk.path_in_schema not in wanted:
                    continue
                start = chunk.data_page_offset
                if chunk.has_dictionary_page and 0 < chunk.dictionary_page_offset < start:
                    start = chunk.dictionary_page_offset
                pos, end = start, start + chunk.total_compressed_size
                while pos < end:
                    uncompressed, compressed, length = _page_header(fh, pos)
                    total += uncompressed
                    pages += 1
                    if total > limit:
                        return total
                    if pages > MAX_PAGES:
                        raise PageHeaderError(f"more than {MAX_PAGES} pages")
                    pos += length + compressed
    return total
