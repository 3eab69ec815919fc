"""Realistic test images made from MNIST digits: ink on paper, as a phone or a scanner sees it.

MNIST's test digits are re-drawn as a user's photo would show them: dark ink on tinted paper,
100-300 px tall, off-centre with margins, under uneven light, with sensor noise, a little blur
and JPEG artefacts; or light ink on a dark board; and in rows, as numbers. All is generated from
a seed, so a test set is a script, not a folder of committed images.

For training: `restyled` redraws digits in styles MNIST lacks, and `non_digits` draws marks
that are no digit at all (stars, crossings, zigzags, scribbles).
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from digitrec.preprocess import normalise


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


def restyled(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28×28 uint8 digits each redrawn in a style MNIST lacks, drawn at random: bold (a broad
    marker), two-level (a canvas brush), blurred from a few pixels (a low-resolution scan) or
    blocky (two-level strokes on a coarse grid)."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        digit = Image.fromarray(image, "L")
        style = int(rng.integers(4))
        if style == 0:
            big = digit.resize((112, 112), Image.Resampling.BILINEAR)
            big = big.filter(ImageFilter.MaxFilter(int(rng.choice([5, 7, 9]))))
            digit = big.resize((28, 28), Image.Resampling.BOX)
        elif style == 1:
            digit = digit.point(lambda v: 255 if v > 100 else 0)
        else:
            side = int(rng.integers(9, 14) if style == 2 else rng.integers(10, 17))
            small = digit.resize((side, side), Image.Resampling.BOX)
            if style == 2:
                digit = small.resize((28, 28), Image.Resampling.BICUBIC)
            else:
                cut = int(rng.integers(70, 130))
                digit = small.point(lambda v, cut=cut: 255 if v > cut else 0).resize(
                    (28, 28), Image.Resampling.NEAREST
                )
        pixels = np.asarray(digit, np.float32)
        out[i] = np.clip(pixels * 255 / max(1.0, float(pixels.max())), 0, 255).astype(np.uint8)
    return out


MARK_SIDE = 112  # marks are drawn this big, then normalised as MNIST, as any input is


def non_digits(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` 28×28 uint8 marks that are no digit, normalised as MNIST: star polygons, crossing
    strokes (X, +, *, #), zigzags and tangled scribbles, pens of every width."""
    makers = (_star, _crossing, _zigzag, _tangle)
    out = np.zeros((count, 28, 28), np.uint8)
    for i in range(count):
        canvas = Image.new("L", (MARK_SIDE, MARK_SIDE), 0)
        makers[i % len(makers)](ImageDraw.Draw(canvas), rng, int(rng.integers(3, 15)))
        ink = np.asarray(canvas.rotate(float(rng.uniform(-20, 20))), np.float32) / 255
        rows, cols = np.nonzero(ink > 0.1)
        if len(rows):
            crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            out[i] = np.round(normalise(crop) * 255).astype(np.uint8)
    return out


def _points(rng: np.random.Generator, count: int, spread: float = 8.0) -> np.ndarray:
    return rng.normal(0, spread, (count, 2))


def _star(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int) -> None:
    # Triangles, squares and star polygons: a convex polygon of five corners or more is a 0.
    corners = int(rng.choice([3, 4, 5, 7, 8]))  # six corners make no star in one stroke
    step = 1 if corners < 5 else int(rng.choice([s for s in (2, 3) if np.gcd(s, corners) == 1]))
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(corners) / corners
    radius = np.array([rng.uniform(30, 50), rng.uniform(30, 50)])
    corner = 56 + np.stack([np.cos(angles), np.sin(angles)], 1) * radius + _points(rng, corners, 3)
    order = [(k * step) % corners for k in range(corners + 1)]
    draw.line([tuple(corner[k]) for k in order], fill=255, width=width, joint="curve")


def _crossing(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int) -> None:
    parallel = rng.random() < 0.3  # a # sign: two pairs of near-parallel strokes
    count = 2 if parallel else int(rng.integers(2, 5))
    # Strokes at least 30° apart: two nearly level ones would be a 1 or a 7.
    angles = rng.uniform(0, np.pi) + np.pi * (np.arange(count) + rng.uniform(-0.2, 0.2, count)) / count
    for angle in np.repeat(angles, 2) if parallel else angles:
        direction = np.array([np.cos(angle), np.sin(angle)])
        centre = 56 + _points(rng, 1, 18 if parallel else 3)[0]  # others cross near their middles
        length = rng.uniform(35, 50)
        draw.line(
            [tuple(centre - direction * length), tuple(centre + direction * length)], fill=255, width=width
        )


def _zigzag(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int) -> None:
    corners = int(rng.integers(4, 8))
    xs = np.linspace(10, 102, corners) + _points(rng, corners, 3)[:, 0]
    ys = np.where(np.arange(corners) % 2, 100, 12) + _points(rng, corners, 6)[:, 1]
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255, width=width, joint="curve")


def _tangle(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int) -> None:
    t = np.linspace(0, 2 * np.pi, 200)
    curve = [
        sum(rng.uniform(5, 20) * np.sin(f * t + rng.uniform(0, 2 * np.pi)) for f in rng.integers(2, 7, 4))
        for _ in range(2)
    ]
    draw.line(
        list(zip((56 + curve[0]).tolist(), (56 + curve[1]).tolist(), strict=True)), fill=255, width=width
    )
