"""Synthetic test images for the MRI validity screen: a typical 'slice', and pictures that are not slices."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def phantom_slice(size: int = 256, seed: int = 0) -> Image.Image:
    """A synthetic axial 'slice': a smooth head ellipse with a bright rim, a blob and a ventricle, on black.

    Its statistics lie inside the central range of the training slices, so it passes the screen
    without a warning (checked in the tests); it stands in for a real slice where the data are
    absent. The smooth texture keeps it from looking flat-filled at large sizes, where the
    pixel noise averages out in the resize to 128 px.
    """
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:size, 0:size] - size / 2) / (size / 2)
    head = (xx / 0.75) ** 2 + (yy / 0.9) ** 2
    img = np.where(head < 1, 0.35, 0.0)
    img = np.where((head < 1) & (head > 0.85), 0.8, img)
    img = np.where(((xx - 0.25) / 0.2) ** 2 + ((yy + 0.1) / 0.25) ** 2 < 1, 0.6, img)
    img = np.where((xx / 0.08) ** 2 + (yy / 0.3) ** 2 < 1, 0.15, img)
    # tissue-like texture at every scale: pixel noise plus a smooth field with features of ~1/32 of the side
    field = np.asarray(
        Image.fromarray(rng.normal(0, 1, (32, 32)).astype(np.float32)).resize((size, size), Image.Resampling.BICUBIC)
    )
    img = img + (head < 1) * (rng.normal(0, 0.04, img.shape) + 0.05 * field)
    return Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))


def photo_like() -> Image.Image:
    """A strongly coloured outdoor-photo-like picture: blue sky gradient, textured green ground, a sun."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:480, 0:640]
    rgb = np.zeros((480, 640, 3))
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 90 + 60 * yy / 480, 140 + 40 * yy / 480, 230 - 30 * yy / 480
    ground = yy > 300
    rgb[ground] = (60, 140, 50)
    rgb[ground, 1] += rng.normal(0, 15, ground.sum())
    rgb[(xx - 480) ** 2 + (yy - 100) ** 2 < 40**2] = (255, 230, 120)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def document_page() -> Image.Image:
    """A scanned-page-like picture: white, with lines of dark 'text'."""
    rng = np.random.default_rng(5)
    page = np.full((320, 320), 255, np.uint8)
    for row in range(30, 290, 16):
        page[row : row + 6, 30 : 30 + int(rng.integers(120, 260))] = rng.integers(0, 80)
    return Image.fromarray(page)


def random_ellipses(seed: int = 0, size: int = 512, count: int = 60) -> Image.Image:
    """Not a slice: ``count`` random flat-filled ellipses on black, blurred (the outside probe's picture)."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(10, 150, 2))
        draw.ellipse((x0, y0, x0 + w, y0 + h), fill=int(rng.integers(60, 255)))
    return img.filter(ImageFilter.GaussianBlur(2))


def tiled(img: Image.Image, n: int) -> Image.Image:
    """Not a slice: ``img`` repeated ``n`` × ``n`` times (a collage of slices)."""
    out = Image.new(img.mode, (img.width * n, img.height * n))
    for i in range(n):
        for j in range(n):
            out.paste(img, (i * img.width, j * img.height))
    return out
