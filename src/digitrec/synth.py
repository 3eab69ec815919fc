"""Realistic test images made from MNIST digits: ink on paper, as a phone or a scanner sees it.

MNIST's test digits are re-drawn as a user's photo would show them: dark ink on tinted paper,
100-300 px tall, off-centre with margins, under uneven light, with sensor noise, a little blur
and JPEG artefacts; or light ink on a dark board; and in rows, as numbers. All is generated from
a seed, so a test set is a script, not a folder of committed images.
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class PhotoStyle:
    """How one synthetic photo looks; `PhotoStyle.random(rng)` draws a varied one."""

    digit_px: int = 160  # the digit's height on the page
    margin: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.5)  # left, top, right, bottom, in digits
    paper: tuple[int, int, int] = (238, 234, 222)
    ink: tuple[int, int, int] = (30, 30, 45)
    light_gradient: float = 0.25  # how much darker the shadowed corner is than the lit one
    noise: float = 4.0  # sensor noise, in grey levels
    blur: float = 0.8
    jpeg_quality: int | None = 85  # None: PNG
    stroke: int = 0  # > 0 thickens strokes by a max filter of that size, < 0 thins them

    @classmethod
    def random(cls, rng: np.random.Generator, light_on_dark: bool = False) -> "PhotoStyle":
        paper = tuple(int(v) for v in rng.integers(205, 250, 3))
        ink = tuple(int(v) for v in rng.integers(10, 70, 3))
        if light_on_dark:
            paper, ink = (
                tuple(int(v) for v in rng.integers(20, 60, 3)),
                tuple(int(v) for v in rng.integers(200, 250, 3)),
            )
        return cls(
            digit_px=int(rng.integers(100, 301)),
            margin=tuple(float(v) for v in rng.uniform(0.2, 1.5, 4)),  # type: ignore[arg-type]
            paper=paper,  # type: ignore[arg-type]
            ink=ink,  # type: ignore[arg-type]
            light_gradient=float(rng.uniform(0, 0.35)),
            noise=float(rng.uniform(0, 8)),
            blur=float(rng.uniform(0, 1.5)),
            jpeg_quality=int(rng.integers(60, 96)) if rng.random() < 0.7 else None,
            stroke=int(rng.choice([-3, 0, 0, 3, 5])),
        )


def render_photo(digits: list[np.ndarray] | np.ndarray, style: PhotoStyle, seed: int = 0) -> bytes:
    """Encoded image bytes (JPEG or PNG) of one or more 28×28 MNIST digits written on paper."""
    rng = np.random.default_rng(seed)
    row = [digits] if isinstance(digits, np.ndarray) and digits.ndim == 2 else list(digits)
    strokes = np.concatenate([_enlarge(d, style) for d in row], axis=1)
    left, top, right, bottom = (int(m * style.digit_px) for m in style.margin)
    height, width = strokes.shape[0] + top + bottom, strokes.shape[1] + left + right
    coverage = np.zeros((height, width), np.float32)
    coverage[top : top + strokes.shape[0], left : left + strokes.shape[1]] = strokes
    paper, ink = np.array(style.paper, np.float32), np.array(style.ink, np.float32)
    page = paper * (1 - coverage[..., None]) + ink * coverage[..., None]
    ys, xs = np.mgrid[0:height, 0:width]
    light = 1 - style.light_gradient * (xs / width + ys / height) / 2
    page = page * light[..., None] + rng.normal(0, style.noise, page.shape)
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), "RGB").filter(
        ImageFilter.GaussianBlur(style.blur)
    )
    out = io.BytesIO()
    if style.jpeg_quality:
        image.save(out, "JPEG", quality=style.jpeg_quality)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _enlarge(digit: np.ndarray, style: PhotoStyle) -> np.ndarray:
    """A 28×28 digit scaled so its 20-px ink box is `digit_px` tall, strokes thickened or thinned."""
    side = round(style.digit_px * 28 / 20)
    big = Image.fromarray((np.asarray(digit, np.float32) * 255).astype(np.uint8), "L").resize(
        (side, side), Image.Resampling.BICUBIC
    )
    if style.stroke > 0:
        big = big.filter(ImageFilter.MaxFilter(style.stroke | 1))
    elif style.stroke < 0:
        big = big.filter(ImageFilter.MinFilter((-style.stroke) | 1))
    return np.asarray(big, np.float32) / 255
