"""The simulated writers of `adapt.py`: MNIST digits redrawn in one person's consistent style.

A writer is one fixed combination of habits: a slant, a pen thicker or thinner than MNIST's, digits
wider or narrower, and marks some people add: a European 1 (a flag and a foot), a crossed 7 (a bar
through the stem), a slashed 0, a hooked 9 (a tail like a g's) and a looped 2. Each digit is
enlarged 4×, marked, re-penned, sheared and stretched there, then normalised as any input is
(`digitrec.preprocess.normalise`: longer side 20 px, centred by mass in 28×28).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from digitrec.preprocess import normalise

SCALE = 4  # digits are marked and re-penned at 112×112
PEN = 9  # the width of a mark at that scale: about MNIST's stroke
INK = 0.3  # a big pixel is ink above this


@dataclass(frozen=True)
class Writer:
    name: str
    slant: float = 0.0  # the top of a digit leans right by this share of its height (negative: left)
    pen: int = 0  # > 0: strokes this many big pixels wider (a dilation); < 0: thinner (an erosion)
    aspect: float = 1.0  # width over MNIST's
    marks: tuple[str, ...] = ()  # names in MARKS

    def write(self, digits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """uint8 MNIST digits (n, 28, 28) as this writer writes them, uint8 (n, 28, 28)."""
        return np.stack([self._one(digit, int(label)) for digit, label in zip(digits, labels, strict=True)])

    def _one(self, digit: np.ndarray, label: int) -> np.ndarray:
        side = 28 * SCALE
        big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR), np.float32)
        big = np.pad(big / 255, side // 2)  # room to lean and widen
        for name in self.marks:
            if MARKS[name][0] == label:
                big = MARKS[name][1](big)
        if self.pen:
            big = (ndimage.grey_dilation if self.pen > 0 else ndimage.grey_erosion)(big, size=abs(self.pen))
        # Each output pixel (row, col) reads the input at (row, slant·(row − centre) + col / aspect).
        matrix = np.array([[1.0, 0.0], [self.slant / self.aspect, 1 / self.aspect]])
        centre = np.array(big.shape) / 2
        big = ndimage.affine_transform(big, matrix, offset=centre - matrix @ centre, order=1)
        rows, cols = np.nonzero(big > 0.1)
        crop = big[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        return np.round(normalise(crop) * 255).astype(np.uint8)


def _box(big: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(big > INK)
    return rows.min(), rows.max(), cols.min(), cols.max()


def _centre_of_row(big: np.ndarray, row: int) -> float:
    return float(np.flatnonzero(big[row] > INK).mean())


def _drawn(big: np.ndarray, shape: Callable[[ImageDraw.ImageDraw], None]) -> np.ndarray:
    canvas = Image.new("L", big.shape[::-1], 0)
    shape(ImageDraw.Draw(canvas))
    return np.maximum(big, np.asarray(canvas, np.float32) / 255)


def _line(big: np.ndarray, *points: tuple[float, float]) -> np.ndarray:
    """`big` with a pen line through (row, col) points."""
    xy = [(float(col), float(row)) for row, col in points]
    return _drawn(big, lambda draw: draw.line(xy, fill=255, width=PEN, joint="curve"))


def flag_and_foot(big: np.ndarray) -> np.ndarray:
    top, bottom, _, _ = _box(big)
    height, top_col, bottom_col = bottom - top, _centre_of_row(big, top), _centre_of_row(big, bottom)
    flagged = _line(big, (top, top_col), (top + 0.35 * height, top_col - 0.3 * height))
    return _line(flagged, (bottom, bottom_col - 0.25 * height), (bottom, bottom_col + 0.25 * height))


def crossed_stem(big: np.ndarray) -> np.ndarray:
    top, bottom, _, _ = _box(big)
    row = int(top + 0.5 * (bottom - top))
    col, half = _centre_of_row(big, row), 0.22 * (bottom - top)
    return _line(big, (row, col - half), (row, col + half))


def slashed(big: np.ndarray) -> np.ndarray:
    top, bottom, left, right = _box(big)
    overshoot = 0.1 * (bottom - top)
    return _line(big, (bottom + overshoot, left - overshoot), (top - overshoot, right + overshoot))


def hooked_tail(big: np.ndarray) -> np.ndarray:
    """A hook curling left from the foot of the stem: a 9 written like a g."""
    top, bottom, _, _ = _box(big)
    height, col = bottom - top, _centre_of_row(big, bottom)
    return _line(
        big,
        (bottom, col),
        (bottom + 0.06 * height, col - 0.15 * height),
        (bottom - 0.08 * height, col - 0.3 * height),
    )


def looped_foot(big: np.ndarray) -> np.ndarray:
    """A small loop where a 2's diagonal meets its base."""
    top, bottom, _, _ = _box(big)
    height = bottom - top
    left = np.flatnonzero(big[int(bottom - 0.3 * height) : bottom + 1].max(0) > INK).min()
    row, col, radius = bottom - 0.12 * height, left + 0.12 * height, 0.15 * height
    box = [col - radius, row - radius, col + radius, row + radius]
    return _drawn(big, lambda draw: draw.ellipse(box, outline=255, width=PEN - 1))


MARKS: dict[str, tuple[int, Callable[[np.ndarray], np.ndarray]]] = {
    "European 1": (1, flag_and_foot),
    "crossed 7": (7, crossed_stem),
    "slashed 0": (0, slashed),
    "hooked 9": (9, hooked_tail),
    "looped 2": (2, looped_foot),
}
WRITERS = (
    Writer(
        "narrow, slanted; European 1, crossed 7, hooked 9",
        slant=0.6,
        aspect=0.6,
        marks=("European 1", "crossed 7", "hooked 9"),
    ),
    Writer("wide, thick; crossed 7, slashed 0", aspect=1.6, pen=9, marks=("crossed 7", "slashed 0")),
    Writer(
        "wide, thick, slanted; European 1, crossed 7",
        slant=0.5,
        aspect=1.4,
        pen=9,
        marks=("European 1", "crossed 7"),
    ),
    Writer("thick, back-slanted; all five marks", slant=-0.3, pen=7, marks=tuple(MARKS)),
    Writer(
        "thin, very wide; slashed 0, looped 2, European 1",
        pen=-5,
        aspect=2.0,
        marks=("slashed 0", "looped 2", "European 1"),
    ),
    Writer(
        "narrow, back-slanted; European 1, looped 2, crossed 7",
        slant=-0.6,
        aspect=0.5,
        marks=("European 1", "looped 2", "crossed 7"),
    ),
    Writer("slanted only", slant=0.6),
)
