"""The brain-MRI data: manifest, decoded images, perceptual hashes and the grouped validation split.

Neighbouring slices of one patient are near-duplicates and the data holds no patient ids, so
validation is drawn as whole groups of images whose perceptual hashes are close.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vitalcheck.catalog import BRAIN_TUMOR
from vitalcheck.imaging import PREPROCESSING, pil_to_unit

CLASSES: tuple[str, ...] = BRAIN_TUMOR.classes
"""Output class order (catalog): glioma, meningioma, notumor, pituitary."""
DATASET_FOLDER = BRAIN_TUMOR.dataset
MANIFEST = "manifest.csv"

PHASH_GROUP_DISTANCE = 6
"""Images whose 64-bit perceptual hashes differ in at most this many bits are linked into one group."""
BORDER_FRACTION = 1 / 16
"""Width of the border ring used by the shortcut checks, as a fraction of the shorter side."""


@dataclass
class ImageSet:
    """Decoded images of one manifest selection.

    Attributes:
        paths: image paths relative to the manifest's folder.
        y: (n,) int64 class indices in :data:`CLASSES` order.
        unit: (n, 128, 128) float32 preprocessed images in [0, 1] (before normalisation).
        phash: (n,) uint64 64-bit perceptual hashes of the decoded images.
        border: (n, k) float32 intensity features of the image border ring (shortcut check).
        histogram: (n, k) float32 whole-image intensity histogram features (shortcut check).

    """

    paths: list[str]
    y: np.ndarray
    unit: np.ndarray
    phash: np.ndarray
    border: np.ndarray
    histogram: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, mask: np.ndarray) -> ImageSet:
        """Return the images where ``mask`` is true (boolean array of length n)."""
        idx = np.flatnonzero(mask)
        return ImageSet(
            [self.paths[i] for i in idx],
            self.y[idx],
            self.unit[idx],
            self.phash[idx],
            self.border[idx],
            self.histogram[idx],
        )


def resolve_manifest(data_dir: Path) -> Path:
    """Find ``manifest.csv`` given the shared data directory or the ``brain_mri`` folder itself.

    Raises:
        FileNotFoundError: neither ``data_dir/manifest.csv`` nor ``data_dir/brain_mri/manifest.csv`` exists.

    """
    data_dir = Path(data_dir)
    for candidate in (data_dir / MANIFEST, data_dir / DATASET_FOLDER / MANIFEST):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {MANIFEST} in {data_dir} or {data_dir / DATASET_FOLDER}")


def read_manifest(manifest: Path, split: str | None = None) -> pd.DataFrame:
    """Read a manifest in the shared format (``path``, ``label``, optional ``split``).

    Args:
        manifest: the CSV file; ``path`` is relative to its folder.
        split: keep only rows of this split (ignored when the file has no ``split`` column).

    Returns:
        DataFrame with at least ``path`` and ``label`` (str), in file order.

    Raises:
        ValueError: a required column is missing, a label is not one of :data:`CLASSES`, or
            no row is left.

    """
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{manifest} lacks column(s) {sorted(missing)}")
    if split is not None and "split" in frame.columns:
        frame = frame[frame["split"] == split]
    unknown = sorted(set(frame["label"]) - set(CLASSES))
    if unknown:
        raise ValueError(f"{manifest} has labels {unknown} outside {list(CLASSES)}")
    if frame.empty:
        raise ValueError(f"{manifest} has no rows" + (f" of split {split!r}" if split else ""))
    return frame.reset_index(drop=True)


def _phash64(gray: Image.Image) -> int:
    import imagehash

    bits = imagehash.phash(gray).hash.flatten()
    return int(np.packbits(bits).view(">u8")[0])


def ring_mask(h: int, w: int) -> np.ndarray:
    """Boolean (h, w) mask of the border ring, :data:`BORDER_FRACTION` of the shorter side wide (at least 1 pixel)."""
    r = max(1, round(min(h, w) * BORDER_FRACTION))
    mask = np.ones((h, w), dtype=bool)
    mask[r : h - r, r : w - r] = False
    return mask


def _intensity_features(values: np.ndarray) -> np.ndarray:
    """16-bin histogram over 0-255 (fractions), mean, std and fraction of near-black values."""
    hist = np.histogram(values, bins=16, range=(0, 256))[0] / max(1, values.size)
    return np.concatenate([hist, [values.mean() / 255, values.std() / 255, np.mean(values <= 8)]]).astype(np.float32)


def load_images(manifest: Path, split: str | None) -> ImageSet:
    """Decode and preprocess every image of a manifest selection once.

    Args:
        manifest: manifest CSV; image paths are relative to its folder.
        split: split to load (``"train"``, ``"test"``) or None for all rows.

    Returns:
        The :class:`ImageSet` (images in [0, 1], hashes, shortcut-check features).

    Raises:
        ValueError: see :func:`read_manifest`.
        OSError: an image is missing or cannot be decoded.

    """
    frame = read_manifest(manifest, split)
    root = manifest.parent
    n = len(frame)
    unit = np.empty((n, PREPROCESSING.height, PREPROCESSING.width), dtype=np.float32)
    phash = np.empty(n, dtype=np.uint64)
    border, histogram = [], []
    for i, rel in enumerate(frame["path"]):
        with Image.open(root / rel) as img:
            img.load()
            unit[i] = pil_to_unit(img)
            gray = img.convert("L")
        phash[i] = _phash64(gray)
        g = np.asarray(gray, dtype=np.float32)
        border.append(_intensity_features(g[ring_mask(*g.shape)]))
        histogram.append(_intensity_features(g))
    y = np.array([CLASSES.index(label) for label in frame["label"]], dtype=np.int64)
    return ImageSet(list(frame["path"]), y, unit, phash, np.stack(border), np.stack(histogram))


def hamming_min_to(query: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For each query hash, the smallest Hamming distance to any reference hash.

    Args:
        query: (n,) uint64 hashes.
        reference: (m,) uint64 hashes, m ≥ 1.
        chunk: query rows per block (bounds memory to chunk × m bytes).

    Returns:
        (n,) int64 distances in [0, 64].

    """
    out = np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), chunk):
        block = np.bitwise_count(query[start : start + chunk, None] ^ reference[None, :])
        out[start : start + chunk] = block.min(axis=1)
    return out


def phash_groups(hashes: np.ndarray, max_distance: int = PHASH_GROUP_DISTANCE, chunk: int = 1024) -> np.ndarray:
    """Group near-identical images: connected components of "Hamming distance ≤ max_distance".

    Args:
        hashes: (n,) uint64 perceptual hashes.
        max_distance: largest Hamming distance (bits of 64) that links two images.
        chunk: rows per block of the pairwise comparison.

    Returns:
        (n,) int64 group id per image (0 .. n_groups - 1).

    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(hashes)
    rows, cols = [], []
    for start in range(0, n, chunk):
        block = np.bitwise_count(hashes[start : start + chunk, None] ^ hashes[None, :]) <= max_distance
        r, c = np.nonzero(block)
        rows.append(r + start)
        cols.append(c)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)[1].astype(np.int64)


def grouped_validation_mask(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Choose whole groups for validation until each class has about ``fraction`` of its images.

    Groups are visited in a seeded random order; a group joins validation if, for every class
    it contains, the class's validation count stays within its target (``fraction`` × class
    count, rounded). No group is split between training and validation.

    Args:
        y: (n,) class indices.
        groups: (n,) group ids (from :func:`phash_groups`).
        fraction: target validation share per class, in (0, 1).
        seed: seed of the group order.

    Returns:
        (n,) boolean mask, true for validation images.

    """
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    target = np.round(np.bincount(y, minlength=n_classes) * fraction)
    taken = np.zeros(n_classes)
    val = np.zeros(len(y), dtype=bool)
    for g in rng.permutation(np.unique(groups)):
        members = groups == g
        counts = np.bincount(y[members], minlength=n_classes)
        if np.all(taken + counts <= target):
            taken += counts
            val |= members
    return val
