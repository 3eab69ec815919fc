"""The images of `realworld.py`: digits in styles MNIST lacks, things that are not digits, rows.

Every image is drawn in two steps. A *strokes* function turns a 28×28 MNIST digit (floats in
[0, 1], white on black) into ink coverage at page scale: blocky, pen, blurry, marker, chalk or as
written. `draw` then puts the coverage on a `Page`: paper or board colour, light falling off
across it, a shadow, grain, ruled lines, blur, noise and JPEG. All is drawn from a generator, so
the set is a seed, not a folder of images.
"""

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

Strokes = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


def resized(image: np.ndarray, side: int, resample: Image.Resampling) -> np.ndarray:
    return np.asarray(
        Image.fromarray(image.astype(np.float32), "F").resize((side, side), resample), np.float32
    )


def frame_side(height: int) -> int:
    """MNIST's 28-px frame holds a 20-px digit: the frame's side for ink `height` px tall."""
    return round(height * 28 / 20)


def as_written(digit: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    return resized(digit, frame_side(height), Image.Resampling.BICUBIC).clip(0, 1)


def blocky(digit: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """Thick two-level strokes scaled up from a small grid, as digits drawn on a 10-16 px canvas."""
    grid = int(rng.integers(10, 17))
    cells = resized(digit, grid, Image.Resampling.BOX) > rng.uniform(0.2, 0.45)
    cell = max(1, round(frame_side(height) / grid))
    return np.kron(cells, np.ones((cell, cell))).astype(np.float32)


def pen(digit: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """A 1-pixel line (2 px one time in four), as a fine pen or a thin brush on a canvas."""
    line = thin(as_written(digit, rng, height) > 0.4)
    if rng.random() < 0.25:
        line = ndimage.binary_dilation(line)
    return line.astype(np.float32)


def blurry(digit: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """A scan from a very small grid (8-12 px), upscaled bilinearly and blurred."""
    small = resized(digit, int(rng.integers(8, 13)), Image.Resampling.BOX)
    big = ndimage.gaussian_filter(resized(small, frame_side(height), Image.Resampling.BILINEAR), height / 40)
    return big / max(float(big.max()), 1e-6)


def marker(digit: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """A felt marker: strokes a sixth to a tenth of the height wide, fully saturated."""
    wide = ndimage.grey_dilation(
        as_written(digit, rng, height), size=max(3, height // int(rng.integers(8, 14)))
    )
    return ((wide - 0.25) * 5).clip(0, 1)


def chalk(digit: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """Chalk: a broad stroke that the board's grain breaks into dust and gaps."""
    stroke = ndimage.grey_dilation(as_written(digit, rng, height), size=max(2, height // 15))
    grain = ndimage.gaussian_filter(rng.random(stroke.shape), rng.uniform(0.6, 1.5))
    grain = ((grain - np.quantile(grain, rng.uniform(0.15, 0.4))) * 20).clip(0, 1)
    return (stroke * grain * rng.uniform(0.6, 0.95)).astype(np.float32)


def thin(mask: np.ndarray) -> np.ndarray:
    """A one-pixel-wide skeleton of a binary shape (Zhang & Suen 1984, "A fast parallel
    algorithm for thinning digital patterns"): border pixels peeled in two alternating passes."""
    image = np.pad(mask, 1).astype(np.uint8)
    changed = True
    while changed:
        changed = False
        for first_pass in (True, False):
            h, w = image.shape  # neighbours P2..P9, clockwise from north
            p = [image[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] for dy, dx in _CLOCKWISE]
            count = sum(p, np.zeros_like(p[0]))
            transitions = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.uint8) for i in range(8))
            a, b = (
                (p[0] * p[2] * p[4], p[2] * p[4] * p[6])
                if first_pass
                else (p[0] * p[2] * p[6], p[0] * p[4] * p[6])
            )
            peel = (
                (image[1:-1, 1:-1] == 1)
                & (count >= 2)
                & (count <= 6)
                & (transitions == 1)
                & (a == 0)
                & (b == 0)
            )
            if peel.any():
                image[1:-1, 1:-1][peel] = 0
                changed = True
    return image[1:-1, 1:-1].astype(bool)


_CLOCKWISE = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]


@dataclass(frozen=True)
class Page:
    """What the coverage is drawn on, and how the camera or scanner sees it."""

    background: tuple[int, ...]
    ink: tuple[int, ...]
    gradient: float = 0.2  # light lost from the brightest corner to the darkest
    shadow: float = 0.0  # light lost under a hand's or a phone's shadow
    grain: float = 3.0  # paper or board texture, in grey levels
    noise: float = 3.0  # sensor noise, in grey levels
    blur: float = 0.6
    lines: tuple[int, ...] | None = None  # ruled lines' colour
    jpeg: int | None = 85  # quality; None: PNG

    @classmethod
    def paper(cls, rng: np.random.Generator, **changes) -> "Page":
        ink = rng.choice([(20, 20, 30), (25, 35, 120), (40, 40, 40), (150, 30, 30)])
        return cls(
            tuple(rng.integers(215, 250) + rng.integers(-12, 6, 3)),
            tuple(ink + rng.integers(0, 30, 3)),
            **(_camera(rng) | changes),
        )

    @classmethod
    def board(cls, rng: np.random.Generator, **changes) -> "Page":
        board = rng.choice([(35, 38, 40), (30, 55, 40), (25, 25, 28)]) + rng.integers(0, 20, 3)
        return cls(tuple(board), tuple(rng.integers(190, 250, 3)), **(_camera(rng) | changes))


def _camera(rng: np.random.Generator) -> dict:
    return {
        "gradient": rng.uniform(0, 0.35),
        "grain": rng.uniform(1, 6),
        "noise": rng.uniform(0, 7),
        "blur": rng.uniform(0, 1.2),
        "jpeg": int(rng.integers(50, 95)) if rng.random() < 0.7 else None,
    }


def draw(coverage: np.ndarray, page: Page, rng: np.random.Generator, margin: float = 0.8) -> bytes:
    """Encoded image of the coverage (ink in [0, 1]) drawn on `page`, with random margins."""
    height = max(coverage.shape[0], 28)
    top, bottom, left, right = (int(m * height) for m in rng.uniform(0.15, margin, 4))
    coverage = np.pad(coverage, ((top, bottom), (left, right)))[..., None]
    light = _light(coverage.shape[:2], page, rng)[..., None]
    grain = ndimage.gaussian_filter(rng.normal(0, 1, coverage.shape[:2]), 1.5)[..., None]
    background = np.array(page.background, np.float32) + grain * page.grain * 3
    if page.lines is not None:
        background = _ruled(background, np.array(page.lines, np.float32), height, rng)
    image = (background * (1 - coverage) + np.array(page.ink, np.float32) * coverage) * light
    image = ndimage.gaussian_filter(image, (page.blur, page.blur, 0)) + rng.normal(0, page.noise, image.shape)
    out = io.BytesIO()
    picture = Image.fromarray(image.clip(0, 255).astype(np.uint8), "RGB")
    picture.save(out, "JPEG", quality=page.jpeg) if page.jpeg else picture.save(out, "PNG")
    return out.getvalue()


def _light(shape: tuple[int, int], page: Page, rng: np.random.Generator) -> np.ndarray:
    """Light falling off in a random direction, and a soft-edged shadow across part of the page."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = xs * np.cos(angle) + ys * np.sin(angle)
    light = 1 - page.gradient * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    if page.shadow:
        angle, offset = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.8)
        edge = (xs - offset) * np.cos(angle) + (ys - offset) * np.sin(angle)
        light *= 1 - page.shadow / (1 + np.exp(-edge / rng.uniform(0.05, 0.2)))
    return light.astype(np.float32)


def _ruled(background: np.ndarray, colour: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """Ruled lines every 0.35-0.6 of a digit's height, 1-2 px, and now and then a margin line."""
    spacing = height * rng.uniform(0.35, 0.6)
    width, strength = int(rng.integers(1, 3)), rng.uniform(0.5, 0.9)
    lined = background.copy()
    for row in np.arange(rng.uniform(0, spacing), background.shape[0], spacing).astype(int):
        lined[row : row + width] = lined[row : row + width] * (1 - strength) + colour * strength
    if rng.random() < 0.3:
        column = int(rng.integers(0, background.shape[1]))
        lined[:, column : column + width] = (
            lined[:, column : column + width] * 0.3 + np.array([200, 60, 60]) * 0.7
        )
    return lined


def rotated(coverage: np.ndarray, degrees: float) -> np.ndarray:
    return ndimage.rotate(coverage, degrees, reshape=True, order=1).clip(0, 1)


# Not digits -------------------------------------------------------------------------------------

SYMBOLS = {  # strokes in a unit square: each a polyline
    "#": [[(0.35, 0), (0.25, 1)], [(0.75, 0), (0.65, 1)], [(0, 0.35), (1, 0.3)], [(0, 0.7), (1, 0.65)]],
    "*": [[(0.5, 0), (0.5, 1)], [(0.07, 0.25), (0.93, 0.75)], [(0.07, 0.75), (0.93, 0.25)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "H": [[(0.1, 0), (0.1, 1)], [(0.9, 0), (0.9, 1)], [(0.1, 0.5), (0.9, 0.5)]],
    "M": [[(0, 1), (0.1, 0), (0.5, 0.7), (0.9, 0), (1, 1)]],
    "triangle": [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]],
    "star": [[(0.5, 0), (0.8, 1), (0, 0.38), (1, 0.38), (0.2, 1), (0.5, 0)]],
}
LETTERS = "ACEFHKMNPRTUVWXYacefhkmnrtuvwxy"  # no O, I, l, S, Z, B, G, q, g...: they pass for digits


def symbol(name: str, rng: np.random.Generator, height: int) -> np.ndarray:
    """A symbol drawn by hand: each point jittered, random width and aspect."""
    width = int(height * rng.uniform(0.7, 1.3))
    canvas = Image.new("L", (width + height // 2, height + height // 2), 0)
    pen_width = max(1, int(height * rng.uniform(0.03, 0.12)))
    for stroke in SYMBOLS[name]:
        points = (
            np.array(stroke) * (width, height) + height / 4 + rng.normal(0, height * 0.04, (len(stroke), 2))
        )
        ImageDraw.Draw(canvas).line([tuple(p) for p in points], fill=255, width=pen_width, joint="curve")
    return np.asarray(canvas.rotate(rng.uniform(-15, 15)), np.float32) / 255


def letter(rng: np.random.Generator, height: int) -> np.ndarray:
    """A letter in Pillow's bundled font, rotated a little, now and then bold."""
    canvas = Image.new("L", (height * 2, height * 2), 0)
    font = ImageFont.load_default(size=height)
    ImageDraw.Draw(canvas).text(
        (height // 2, height // 3), str(rng.choice(list(LETTERS))), font=font, fill=255
    )
    ink = np.asarray(canvas.rotate(rng.uniform(-12, 12)), np.float32) / 255
    return ndimage.grey_dilation(ink, size=max(1, height // 15)) if rng.random() < 0.5 else ink


def scribble(rng: np.random.Generator, height: int) -> np.ndarray:
    """A pen wandering with momentum: a smooth random walk of 20-60 steps."""
    steps = int(rng.integers(20, 60))
    heading = np.cumsum(rng.normal(0, 0.6, steps))
    points = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * height / 10, axis=0)
    points = (points - points.min(0)) / max(float(np.ptp(points)), 1e-6) * height + height / 4
    canvas = Image.new("L", (int(points[:, 0].max() + height / 4), int(points[:, 1].max() + height / 4)), 0)
    width = max(1, int(height * rng.uniform(0.02, 0.1)))
    ImageDraw.Draw(canvas).line([tuple(p) for p in points], fill=255, width=width, joint="curve")
    return np.asarray(canvas, np.float32) / 255


# Rows -------------------------------------------------------------------------------------------


def row(digits: np.ndarray, strokes: Strokes, rng: np.random.Generator, height: int) -> np.ndarray:
    """Digits side by side: gaps of 0.1-0.5 of their height; one row in three has a touching
    pair (overlapping by a few pixels), one in three a stroke broken by a thin erased band."""
    pieces = [_ink_columns(strokes(d, rng, height)) for d in digits]
    if rng.random() < 1 / 3:
        k = int(rng.integers(len(pieces)))
        pieces[k] = _broken(pieces[k], rng)
    gaps = rng.uniform(0.1, 0.5, len(pieces) - 1) * height
    if rng.random() < 1 / 3:
        gaps[int(rng.integers(len(gaps)))] = -rng.integers(1, max(2, height // 12))
    width = int(sum(p.shape[1] for p in pieces) + gaps.sum()) + 1
    out = np.zeros((max(p.shape[0] for p in pieces) + height // 5, width), np.float32)
    left = 0
    for piece, gap in zip(pieces, [*gaps, 0], strict=True):
        top = int(rng.integers(0, height // 5 + 1))  # a hand's baseline wanders
        region = out[top : top + piece.shape[0], left : left + piece.shape[1]]
        np.maximum(region, piece, out=region)
        left += piece.shape[1] + int(gap)
    return out


def _ink_columns(coverage: np.ndarray) -> np.ndarray:
    columns = np.flatnonzero(coverage.max(0) > 0.1)
    return coverage[:, columns.min() : columns.max() + 1] if len(columns) else coverage


def _broken(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A thin band erased across the digit, as a pen that skipped: 1-3% of its height."""
    ys, xs = np.mgrid[0 : coverage.shape[0], 0 : coverage.shape[1]]
    angle = rng.uniform(0, np.pi)
    distance = (ys - coverage.shape[0] * rng.uniform(0.3, 0.7)) * np.cos(angle) + (
        xs - coverage.shape[1] / 2
    ) * np.sin(angle)
    return np.where(np.abs(distance) < max(1.0, coverage.shape[0] * rng.uniform(0.01, 0.03)), 0, coverage)
