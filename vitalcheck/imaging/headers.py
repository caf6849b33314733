"""Container checks on the raw upload bytes, made before Pillow parses anything.

Pillow parses each PNG chunk and JPEG marker segment in Python, and libjpeg decodes each scan of
a progressive JPEG over the whole image: counting them here, from the headers alone (no CRC, no
decompression), refuses uploads made of very many of them before that cost is paid. Other image
formats are recognised by their magic numbers, so that the refusal can name them.
"""

from __future__ import annotations

import struct

from vitalcheck.imaging.errors import ImageRejected

MAX_METADATA_SEGMENTS = 64
"""Most PNG chunks other than image data (IDAT/fdAT), or JPEG marker segments before the first
scan, an upload may have: Pillow parses each one in Python (500 000 tiny ``tEXt`` chunks cost
about 2 s of CPU), where real images have a few dozen at most."""

_MAX_PNG_CHUNKS = 16_384
"""Most PNG chunks in all (image data included; 20 MiB in libpng's 8 KiB IDAT chunks is 2560)."""

MAX_JPEG_SCANS = 64
"""Most scans (SOS markers) of a JPEG: libjpeg's progressive encodings use about 10."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IMAGE_DATA = frozenset({b"IDAT", b"fdAT"})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})

# Magic numbers of common image formats that are recognised but not accepted.
_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"DICM", "DICOM"),
)


def _sniff_other_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[128:132] == b"DICM":
        return "DICOM"
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    return None


def _png_chunks_ok(data: bytes) -> bool:
    """Walk the PNG chunk headers (no CRC, no decompression): False if there are too many chunks."""
    pos, other, total = len(_PNG_SIGNATURE), 0, 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        total += 1
        other += kind not in _PNG_IMAGE_DATA
        if other > MAX_METADATA_SEGMENTS or total > _MAX_PNG_CHUNKS:
            return False
        if kind == b"IEND":
            break
        pos += 12 + length
    return True


def _jpeg_layout(data: bytes) -> tuple[int, int]:
    """Walk the JPEG marker segments up to the first scan: ``(segments, scans)``.

    ``segments`` stops counting just above :data:`MAX_METADATA_SEGMENTS`; ``scans`` counts the
    start-of-scan markers (``FF DA`` cannot occur inside entropy-coded data, where ``FF`` is
    always followed by ``00`` or a restart marker; a thumbnail inside an APP segment is skipped).
    Malformed layouts are left to Pillow (which rejects them).
    """
    pos, segments = 2, 0
    while pos + 4 <= len(data) and segments <= MAX_METADATA_SEGMENTS:
        if data[pos] != 0xFF:
            return segments, 0
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        segments += 1
        if marker == 0xDA:
            return segments, 1 + data.count(b"\xff\xda", pos + 2)
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return segments, 0


def _check_container(data: bytes) -> int:
    """Refuse uploads with too many metadata chunks; return the number of JPEG scans (0 for PNG)."""
    if data.startswith(_PNG_SIGNATURE):
        if not _png_chunks_ok(data):
            raise ImageRejected(f"more than {MAX_METADATA_SEGMENTS} PNG metadata chunks")
        return 0
    if data.startswith(b"\xff\xd8"):
        segments, scans = _jpeg_layout(data)
        if segments > MAX_METADATA_SEGMENTS:
            raise ImageRejected(f"more than {MAX_METADATA_SEGMENTS} JPEG header segments")
        if scans > MAX_JPEG_SCANS:  # each scan of a progressive JPEG is decoded over the whole image
            raise ImageRejected(f"more than {MAX_JPEG_SCANS} JPEG scans")
        return scans
    return 0
