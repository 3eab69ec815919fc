"""From any image a user has to what the model saw: MNIST's own normalisation, in NumPy and Pillow.

MNIST digits are white ink on black, the ink's bounding box fitted into 20×20 keeping its
aspect ratio, anti-aliased, and placed in a 28×28 frame so that the ink's centre of mass is at
the centre. A photo of a digit on paper is far from that: dark ink on light, off-centre, of any
size, under uneven light, with noise and JPEG artefacts. `to_mnist` undoes each difference:

1. decode (PNG, JPEG, BMP, GIF first frame, WebP, TIFF; no other format), honouring EXIF
   orientation, with transparency composited onto a backdrop that contrasts with the ink;
2. grey, and polarity from the paper's local level: dark ink on light paper is inverted;
3. the background estimated by a wide opening and subtracted, so shadows and gradients drop
   out, and the ink scaled by its strokes' own strength;
4. a threshold by Otsu's method on what remains, ruled lines and specks dropped;
5. crop to the ink, strokes thinner than MNIST's redrawn at its width, edges softened as
   MNIST's are, fit the longer side to 20 px with area averaging, and place in 28×28 by centre
   of mass.

`segment` returns one normalised digit per character, left to right, with the ways to split or
join them that the recognizer weighs; `read` gives both readings from one decode and one cleaning.
"""

import io
import itertools
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitrec.errors import ConfigError, ImageError

MAX_PIXELS = 40_000_000  # a 40-megapixel photo; larger declared sizes are decompression bombs
MAX_SIDE = 16_384  # longer than any camera's; a tiny file can declare 39,999,999 × 1
MAX_ASPECT = 50  # beyond 1,024 px: a row of digits is ~10:1, a strip 1 px high is an attack
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")  # no other decoder runs (EPS calls Ghostscript)
WORK_SIDE = 1024  # photos are shrunk to this longer side before cleaning: digits stay > 100 px
FIT_SIDE = 20  # MNIST fits the ink's longer side to 20 px ...
FRAME_SIDE = 28  # ... and centres it by mass in 28 × 28
DRAW_SIDE = 4 * FIT_SIDE  # strokes are measured, and thin ones redrawn, with this longer side ...
MIN_STROKE = 5.0  # ... where MNIST's are 8-12 px wide; thinner than this is redrawn ...
STROKE = 8.0  # ... this wide
# MNIST's strokes fade out over a pixel or so at their edges; hard-edged ink (two-level canvas
# strokes, marker, chalk) is softened as much at DRAW_SIDE (0.6 px at FIT_SIDE) before it shrinks.
# Chosen on the realworld benchmark's development seeds 1 and 2 (benchmarks/RESULTS.md): thick
# two-level strokes 0.85-0.88 -> 0.935-0.94, other writers' rows +0.05-0.09, real digits unchanged.
EDGE_SIGMA = 2.5
MIN_CONTRAST = 0.12  # less ink-to-paper contrast than this is an empty image
# Ink at 0.6 of the strongest strokes' strength is ink whatever Otsu's cut: where pressure varies
# along the strokes, Otsu splits the ink itself in two and drops the lighter part. On MNIST-style
# ink (validation digits) Otsu cuts at 0.49-0.59: that is left as it was.
SURE_INK = 0.6
LEVEL_TIE = 0.1  # ink and paper standing out this nearly as far from the local level: a tie
MIN_INK_PIXELS = 12  # fewer pixels of ink than this (at WORK_SIDE) is an empty image
# Ink this many times as wide as the row's median height was two touching digits in all 44 cases
# of the realworld benchmark's development rows (seeds 1-3, 3,512 characters), never one digit;
# squeezed into one frame, such a pair often reads confidently as one digit (a 4 for 41).
WIDE = 1.4
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def limit_pillow_pixels() -> None:
    """Make Pillow's own bomb check stop images at twice `MAX_PIXELS`, for the whole process.

    Between once and twice Pillow only warns, which is redundant: `load_grey` refuses such an
    image from its header, before decoding, so the warning is silenced. The CLI and the server
    call this, as they own their process; a notebook that imports digitrec keeps Pillow's settings.
    """
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Digit:
    """One normalised digit: the 28×28 image the model sees and where it was in the input."""

    image: np.ndarray  # (28, 28) float32 in [0, 1], white ink on black
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the input's pixels
    empty: bool = False  # no ink found: the image is blank or nearly so
    ink_groups: int = 1  # digit-sized groups of ink apart by clear gaps: more than 1 looks like a number
    # Ink that may be two digits touching or overlapping: ways to part it into a left and a
    # right digit, for the recognizer to weigh against reading it whole.
    splits: "tuple[tuple[Digit, Digit], ...]" = ()
    joined: "Digit | None" = None  # this character's ink with the next one's: a digit broken in two?
    wide: bool = False  # at least WIDE × the row's height: likelier two digits touching than one


ImageInput = str | Path | bytes | Image.Image | np.ndarray


def load_grey(source: ImageInput) -> np.ndarray:
    """Any supported input as a 2-D float32 array in [0, 1] (0 black), orientation applied."""
    if isinstance(source, np.ndarray):
        return _array_to_grey(source)
    name = _name(source)
    if isinstance(source, Image.Image):
        return _decode(source, name)
    with _open(source, name) as image:  # the file is closed whatever happens
        return _decode(image, name)


def open_image(source: str | Path | bytes) -> Image.Image:
    """The image with only its header read, its declared size checked against the pixel budget."""
    name = _name(source)
    image = _open(source, name)
    try:
        check_size(image.width, image.height, name)
    except ImageError:
        image.close()
        raise
    return image


def check_size(width: int, height: int, name: str = "the image") -> None:
    """Refuse a declared size over the budget: area, each side, and the ratio of the sides."""
    if width * height > MAX_PIXELS:  # the header's size: refused before any decoding
        raise ImageError(f"{name}: {width}×{height} pixels, over the {MAX_PIXELS:,}-pixel limit")
    longer, shorter = max(width, height), max(1, min(width, height))
    if longer > MAX_SIDE or (longer > WORK_SIDE and longer > MAX_ASPECT * shorter):
        raise ImageError(
            f"{name}: {width}×{height} pixels, over the pixel limit of {MAX_SIDE:,} a side "
            f"and {MAX_ASPECT}:1 between the sides beyond {WORK_SIDE:,}"
        )


def _decode(image: Image.Image, name: str) -> np.ndarray:
    """The grey pixels of an opened image; one over the pixel budget is refused from its size."""
    check_size(image.width, image.height, name)
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        if image.format == "JPEG" and max(image.size) > 2 * WORK_SIDE:
            image.draft("L", (image.width // 2, image.height // 2))  # decode at lower scale: 4-8× faster
        image = ImageOps.exif_transpose(image) or image
        return _flatten(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{name}: not a readable image ({exc})") from exc


def _name(source: str | Path | bytes | Image.Image) -> str:
    """How an error message names the image: its path, where it has one."""
    if isinstance(source, bytes):
        return "the image bytes"
    return "the image" if isinstance(source, Image.Image) else str(source)


def _open(source: str | Path | bytes, name: str) -> Image.Image:
    """The image with its header read and nothing decoded yet: size and format are known."""
    try:
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=FORMATS)
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's words name its own limit: the figures say the same against ours. Its error
        # comes from twice that limit; its warning, an exception where warnings are errors, from once.
        twice = isinstance(exc, Image.DecompressionBombError)
        over = (Image.MAX_IMAGE_PIXELS or 0) * (2 if twice else 1)
        raise ImageError(f"{name}: more than {over:,} pixels, over the {MAX_PIXELS:,}-pixel limit") from exc
    except UnidentifiedImageError:  # its message names the file object, address and all
        raise ImageError(f"{name}: not a readable image (not {', '.join(FORMATS)})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{name}: not a readable image ({exc})") from exc


def _flatten(image: Image.Image) -> np.ndarray:
    """Grey in [0, 1], transparency composited onto black or white, whichever the ink is not."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), np.float32) / 255
        grey = np.asarray(rgba.convert("L"), np.float32) / 255
        if alpha.min() < 0.99:
            opaque = alpha > 0.5
            ink_is_dark = not opaque.any() or float(grey[opaque].mean()) < 0.5
            backdrop = 1.0 if ink_is_dark else 0.0
            return (grey * alpha + backdrop * (1 - alpha)).astype(np.float32)
        return grey
    return np.asarray(image.convert("L"), np.float32) / 255


def _array_to_grey(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        # float64: a float32 sum of three channels near float32's maximum overflows to infinity
        array = array[..., :3].mean(axis=-1, dtype=np.float64) if array.shape[-1] >= 3 else array[..., 0]
    if array.ndim != 2 or min(array.shape) < 1:
        raise ImageError(f"expected a 2-D image array (height, width), got shape {array.shape}")
    if array.size > MAX_PIXELS:
        raise ImageError(f"array of {array.size:,} pixels is over the {MAX_PIXELS:,}-pixel limit")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ImageError(f"expected a numeric image array, got dtype {array.dtype}")
    grey = array.astype(np.float64)  # float32 would overflow to infinity on huge values
    if not np.isfinite(grey).all():
        raise ImageError("the image array holds NaN or infinite values")
    if np.issubdtype(array.dtype, np.integer) or grey.max() > 1.0:
        grey = grey / 255.0
    return np.clip(grey, 0.0, 1.0).astype(np.float32)


def is_mnist_like(grey: np.ndarray) -> bool:
    """Already normalised: 28×28, dark border, so it goes to the model as it is."""
    border = np.concatenate([grey[:2].ravel(), grey[-2:].ravel(), grey[:, :2].ravel(), grey[:, -2:].ravel()])
    return grey.shape == (FRAME_SIDE, FRAME_SIDE) and float(border.max(initial=0)) < 0.1


def ink_map(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Ink strength in [0, 1] (1 the darkest stroke) with paper and lighting removed, and the scale.

    Returns the ink of a copy shrunk to at most WORK_SIDE and the factor from it back to `grey`.
    """
    from scipy import ndimage  # here, not above: checking a file's header needs no SciPy (0.3 s)

    scale = max(grey.shape) / WORK_SIDE if max(grey.shape) > WORK_SIDE else 1.0
    if scale > 1:
        grey = _fit(grey, WORK_SIDE)
    if _dark_ink(grey):  # make the ink the bright part
        grey = 1.0 - grey
    # The background (paper, shadows, gradients) is what an opening wider than any stroke
    # leaves: it erases the bright strokes and keeps the slowly varying light under them.
    width = max(3, min(grey.shape) // 4)  # the shorter side: a row's strokes are a tenth of its height
    # The opening runs on a smoothed copy: on raw grain it follows the noise's troughs, and
    # the light between them would pass for faint ink.
    smooth = ndimage.gaussian_filter(grey, 2.0)
    background = ndimage.uniform_filter(ndimage.grey_opening(smooth, size=(width, width)), size=width)
    residual = grey - background
    grain = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    strokes = residual[residual > max(MIN_CONTRAST, 6 * grain)]
    if strokes.size < MIN_INK_PIXELS:  # paper, noise and shadows only: nothing to normalise up
        return np.zeros_like(grey, np.float32), scale
    peak = float(np.percentile(strokes, 90))
    return (residual / peak).clip(0, 1).astype(np.float32), scale


def _dark_ink(grey: np.ndarray) -> bool:
    """Dark ink on light paper, or light on dark: the side of the paper's local level that
    reaches further. A shadow over half a page fools a border's or a whole image's level.

    In a clean two-level image both sides reach equally far wherever bold strokes fill a
    window (the median there is the ink's); then the ink is the side that stands out from its
    surroundings more often.
    """
    from scipy import ndimage

    small = _fit(grey, 64) if max(grey.shape) > 64 else grey
    flat = small - ndimage.median_filter(small, size=max(3, min(small.shape) // 3))
    dark, light = -float(np.percentile(flat, 1)), float(np.percentile(flat, 99))
    if abs(dark - light) > LEVEL_TIE * max(dark, light):
        return dark > light
    cut = max(dark, light) / 2
    return int(np.count_nonzero(flat < -cut)) > int(np.count_nonzero(flat > cut))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that best separates two classes."""
    histogram, edges = np.histogram(values, bins=64, range=(0, 1))
    weights = histogram.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(weights)
    above = below[-1] - below
    mean_below = np.cumsum(weights * centres) / np.maximum(below, 1)
    mean_above = (np.sum(weights * centres) - np.cumsum(weights * centres)) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(centres[int(np.argmax(between))])


def ink_components(ink: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    """Label the strokes: pixels above Otsu's cut (at most `SURE_INK`), 8-connected, specks dropped."""
    from scipy import ndimage

    if float(ink.max(initial=0)) < MIN_CONTRAST:
        return np.zeros(ink.shape, np.int32), []
    cut = _otsu(ink[ink > 0.02]) if (ink > 0.02).any() else 0.5
    mask = ink > min(max(cut, 0.2), SURE_INK)
    mask &= ~(_lines_across(mask) | _lines_across(mask.T).T)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return labels, []
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    keep = sizes >= max(4, 0.02 * sizes.max())
    labels = np.where(np.isin(labels, np.flatnonzero(keep) + 1), labels, 0)
    return labels, [s for i, s in enumerate(ndimage.find_objects(labels)) if s is not None and keep[i]]


def _lines_across(mask: np.ndarray, strips: int = 8) -> np.ndarray:
    """The pixels of ruled or printed lines running across the page (within about 5° of level),
    less the strokes that cross them: a line covers most of nearly every eighth of the width
    at nearly the same height, which no digit does."""
    from scipy import ndimage

    height, width = mask.shape
    lines = np.zeros_like(mask)
    if width < 8 * strips or height < 16:
        return lines
    step = width / strips
    drift = max(2, round(0.09 * step))  # rows a line 5° off level climbs across one strip
    pooled = ndimage.maximum_filter1d(mask, 2 * drift + 1, axis=0)
    edges = np.linspace(0, width, strips + 1).astype(int)
    covered = np.stack([pooled[:, a:b].mean(axis=1) > 0.8 for a, b in itertools.pairwise(edges)], axis=1)
    if covered.sum(axis=1).max(initial=0) == 0:
        return lines
    for s, (a, b) in enumerate(itertools.pairwise(edges)):
        support = sum(
            ndimage.maximum_filter1d(covered[:, t], 2 * drift * abs(s - t) + 1) for t in range(strips)
        )
        band = covered[:, s] & (support >= strips - 1)
        lines[band, a:b] = True
    # A stroke that crosses a line runs on above and below it; the line itself is thin.
    thick = max(4, height // 100 + 3)
    crossing = ndimage.binary_opening(mask, structure=np.ones((thick, 1), bool))
    return lines & mask & ~crossing


def normalise(ink: np.ndarray) -> np.ndarray:
    """A crop of ink (bright on dark) to MNIST's frame: longer side 20 px, centred by mass in 28×28."""
    fitted = _fit(_soft_edged(_thickened(_fit(ink, DRAW_SIDE))), FIT_SIDE)
    frame = np.zeros((FRAME_SIDE, FRAME_SIDE), np.float32)
    total = float(fitted.sum())
    rows, cols = np.indices(fitted.shape)
    centre_row = float((rows * fitted).sum() / total) if total else fitted.shape[0] / 2
    centre_col = float((cols * fitted).sum() / total) if total else fitted.shape[1] / 2
    top = int(np.clip(round(FRAME_SIDE / 2 - centre_row), 0, FRAME_SIDE - fitted.shape[0]))
    left = int(np.clip(round(FRAME_SIDE / 2 - centre_col), 0, FRAME_SIDE - fitted.shape[1]))
    frame[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return np.clip(frame, 0, 1)


def _fit(ink: np.ndarray, side: int) -> np.ndarray:
    """`ink` with its longer side resized to `side` pixels."""
    height, width = ink.shape
    factor = side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    # BOX is area averaging when shrinking, which is how MNIST's anti-aliased grey edges arose.
    return np.asarray(
        Image.fromarray(ink.astype(np.float32), "F").resize(size, Image.Resampling.BOX), np.float32
    )


def _soft_edged(ink: np.ndarray) -> np.ndarray:
    """`ink` blurred by EDGE_SIGMA, its strongest stroke as strong as before: edges soften, ink stays."""
    from scipy import ndimage

    soft = ndimage.gaussian_filter(ink, EDGE_SIGMA)
    return soft * (float(ink.max(initial=0)) / max(float(soft.max(initial=0)), 1e-6))


def _thickened(ink: np.ndarray) -> np.ndarray:
    """Strokes thinner than MNIST's at DRAW_SIDE (a pen line on a big page, a canvas's 1-px
    brush) redrawn at full strength and MNIST's width; others as they are. Shrunk as they
    were, they would fade to a faint grey line the model has never seen."""
    from scipy import ndimage

    mask = ink > 0.5 * float(ink.max(initial=0))
    edge = mask & ~ndimage.binary_erosion(mask)
    width = 2 * mask.sum() / max(1, edge.sum())  # a stroke's area over half its outline
    if width >= MIN_STROKE or not mask.any():
        return ink
    radius = int(np.ceil((STROKE - width) / 2))
    disk = np.hypot(*np.mgrid[-radius : radius + 1, -radius : radius + 1]) <= radius
    strength = float(np.percentile(ink[mask], 90))
    return ndimage.grey_dilation(np.clip(ink / strength, 0, 1), footprint=disk)


def read(source: ImageInput, multi: bool = False) -> tuple[Digit, list[Digit] | None]:
    """The image as one digit and, with `multi`, as its digits left to right (empty: no ink).

    The image is decoded and cleaned once for both readings.
    """
    grey = load_grey(source)
    if is_mnist_like(grey):
        frame = (0, 0, FRAME_SIDE, FRAME_SIDE)
        whole = Digit(grey.astype(np.float32), frame, empty=float(grey.max()) < MIN_CONTRAST)
        return whole, ([whole] if multi else None)
    ink, scale = ink_map(grey)
    labels, boxes = ink_components(ink)
    return _whole(ink, scale, labels, boxes), (_characters(ink, scale, labels, boxes) if multi else None)


def to_mnist(source: ImageInput) -> Digit:
    """One image holding one digit, normalised as MNIST."""
    return read(source)[0]


def segment(source: ImageInput) -> list[Digit]:
    """An image of a number, as its digits left to right (empty list: no ink)."""
    return read(source, multi=True)[1] or []


def _whole(ink: np.ndarray, scale: float, labels: np.ndarray, boxes: list) -> Digit:
    if not boxes:
        return Digit(np.zeros((FRAME_SIDE, FRAME_SIDE), np.float32), (0, 0, 0, 0), empty=True)
    return replace(_digit(ink, labels > 0, scale), ink_groups=_groups(boxes))


def _groups(boxes: list[tuple[slice, slice]]) -> int:
    """How many digits the ink looks like: strokes grouped by column (`_merge_overlapping`), each
    group at least half as tall as the tallest, apart by a gap of a tenth of that height or more.

    Digits written apart are counted; touching ones are one group. On 600 single MNIST digits no
    two such groups arose; on 200 synthetic rows of 2-4 digits the smallest gap was 0.22.
    """
    groups = _merge_overlapping(boxes)
    tallest = max(rows.stop - rows.start for rows, _ in groups)
    columns = [cols for rows, cols in groups if rows.stop - rows.start >= 0.5 * tallest]
    count, right = 1, columns[0].stop
    for cols in columns[1:]:
        count += cols.start - right >= 0.1 * tallest
        right = max(right, cols.stop)
    return count


def _characters(ink: np.ndarray, scale: float, labels: np.ndarray, boxes: list) -> list[Digit]:
    if not boxes:
        return []
    groups = _split_touching(_merge_overlapping(_attach_fragments(boxes)), labels > 0)
    height = float(np.median([rows.stop - rows.start for rows, _ in groups]))
    digits, strokes = [], []
    ordered = sorted(groups, key=lambda c: c[1].start)
    for crop in ordered:
        own = np.zeros_like(labels)
        own[crop] = _own_strokes(labels, crop)
        # Two touching digits are seldom narrower than the row is tall (8 of 91 in the realworld
        # benchmark's development rows); of the narrower ink once offered splits for holding
        # several strokes, 215 of 217 were one digit, whose pieces the model reads confidently.
        width = crop[1].stop - crop[1].start
        splits = _splits(own, crop, height) if width >= height else []
        pairs = tuple((_digit(ink, left, scale), _digit(ink, right, scale)) for left, right in splits)
        image = normalise(_soft_ink(ink, own > 0, crop))
        digits.append(Digit(image, _box(crop, scale), splits=pairs, wide=width >= WIDE * height))
        strokes.append(own > 0)
    # Neighbours that overlap across the page or nearly touch may be one digit broken in two:
    # they are also offered joined.
    for i, (crop, after) in enumerate(itertools.pairwise(ordered)):
        if after[1].start - crop[1].stop < 0.05 * height:
            digits[i] = replace(digits[i], joined=_digit(ink, strokes[i] | strokes[i + 1], scale))
    return digits


def _own_strokes(labels: np.ndarray, crop: tuple[slice, slice]) -> np.ndarray:
    """The labels within a crop less a neighbour's stroke reaching into it: a stroke counts if
    half of it lies inside, or it is a quarter of the ink inside (a stroke cut between two)."""
    from scipy import ndimage

    window = labels[crop]
    ids, inside = np.unique(window[window > 0], return_counts=True)
    if not len(ids):
        return window
    totals = ndimage.sum_labels(labels > 0, labels, ids)
    mine = ids[(inside >= 0.5 * totals) | (inside >= 0.25 * inside.sum())]
    return np.where(np.isin(window, mine), window, 0)


def _splits(
    labels: np.ndarray, crop: tuple[slice, slice], height: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ways to part the ink of a crop into a left and a right digit, as full-size masks: whole
    strokes apart where it holds several (sorted by centre, parted where they overlap least),
    and cuts along the paths crossing the least ink. Parts with under a tenth of the ink, or
    under half the row's `height` (a 5's flag, a stroke broken off, as `_attach_fragments`
    has it), are left out: the model reads such a piece as a confident 1 or 7."""
    from scipy import ndimage

    cols = crop[1]
    inside = np.zeros_like(labels)
    inside[crop] = labels[crop]
    ids = [i for i in np.unique(inside[crop]) if i]
    splits = []
    if len(ids) >= 2:
        centres = ndimage.center_of_mass(inside > 0, inside, ids)
        ordered = [i for _, i in sorted(zip([c[1] for c in centres], ids, strict=True))]
        spans = {i: np.flatnonzero((inside == i).any(axis=0)) for i in ids}

        def overlap(k: int) -> int:
            stop = max(spans[i].max() for i in ordered[:k]) + 1
            start = min(spans[i].min() for i in ordered[k:])
            return stop - start

        k = min(range(1, len(ordered)), key=overlap)
        splits.append((np.isin(inside, ordered[:k]), np.isin(inside, ordered[k:])))
    for path in _cut_paths(inside[crop] > 0):
        part = np.arange(cols.stop - cols.start) < path[:, None]
        left, right = np.zeros(labels.shape, bool), np.zeros(labels.shape, bool)
        left[crop], right[crop] = (inside[crop] > 0) & part, (inside[crop] > 0) & ~part
        splits.append((left, right))
    return [
        (a, b)
        for a, b in splits
        if min(a.sum(), b.sum()) >= 0.1 * (a.sum() + b.sum()) and min(_height(a), _height(b)) >= 0.5 * height
    ]


def _cut_paths(mask: np.ndarray, count: int = 3, slant: float = 0.1) -> list[np.ndarray]:
    """Where to cut ink that may hold two digits, likeliest first: the `count` top-to-bottom
    paths crossing the least ink (ties: the one parting the ink more evenly), ending at least
    three columns apart, each leaving a fifth of the ink or more on either side. A path is the
    first column right of the cut in each row.

    A path moves at most one column a row, at a cost of `slant` inked pixels (a tenth: straight
    wins ties; infinite: a straight column), so it follows a slanted or curved gap between two
    digits where a column would slice through one of them: the shortest-path cut of touching
    characters, by dynamic programming over the rows."""
    ink = mask.astype(np.float32)
    height, width = ink.shape
    cost = ink.copy()  # the least ink crossed on a path from the top row to each pixel
    came_from = np.zeros((height, width), np.int64)  # -1, 0, 1: the column step into each pixel
    for row in range(1, height):
        above = cost[row - 1]
        before = np.stack([np.r_[np.inf, above[:-1] + slant], above, np.r_[above[1:] + slant, np.inf]])
        best = before.argmin(axis=0)
        came_from[row] = best - 1
        cost[row] += before[best, np.arange(width)]
    paths = np.empty((height, width), np.int64)  # paths[:, j]: the path ending at column j
    columns = np.arange(width)
    for row in range(height - 1, -1, -1):
        paths[row] = columns
        columns = columns + came_from[row, columns]
    left_ink = np.take_along_axis(np.c_[np.zeros(height), np.cumsum(ink, axis=1)], paths, axis=1).sum(axis=0)
    share = left_ink / max(1.0, float(ink.sum()))
    cuts: list[int] = []
    for end in np.lexsort((np.abs(share - 0.5), cost[-1])):
        if 0.2 <= share[end] <= 0.8 and all(abs(end - cut) >= 3 for cut in cuts):
            cuts.append(int(end))
    ends = cuts[:count] or [width // 2]
    return [paths[:, end] for end in ends]


def _digit(ink: np.ndarray, keep: np.ndarray, scale: float) -> Digit:
    """The ink of the strokes in `keep`, cropped to them and normalised as MNIST."""
    rows, cols = np.nonzero(keep)
    crop = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    return Digit(normalise(_soft_ink(ink, keep, crop)), _box(crop, scale))


def _height(mask: np.ndarray) -> int:
    """How many rows a mask's ink spans, top to bottom."""
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


def _soft_ink(ink: np.ndarray, keep: np.ndarray, crop: tuple[slice, slice]) -> np.ndarray:
    """The ink within a crop, grey edges kept but only near the strokes that were kept."""
    from scipy import ndimage

    near = ndimage.binary_dilation(keep[crop], iterations=2)
    return np.where(near, ink[crop], 0.0)


def _box(crop: tuple[slice, slice], scale: float) -> tuple[int, int, int, int]:
    rows, cols = crop
    return (
        round(cols.start * scale),
        round(rows.start * scale),
        round(cols.stop * scale),
        round(rows.stop * scale),
    )


def _merge_overlapping(boxes: list[tuple[slice, slice]]) -> list[tuple[slice, slice]]:
    """Join pieces of one broken digit: components whose columns mostly overlap, or that
    overlap at all and lie one above the other (a stroke broken across; digits side by side
    share most of their rows)."""
    merged: list[tuple[slice, slice]] = []
    for rows, cols in sorted(boxes, key=lambda b: b[1].start):
        if merged:
            last_rows, last_cols = merged[-1]
            overlap = min(cols.stop, last_cols.stop) - max(cols.start, last_cols.start)
            shared_rows = min(rows.stop, last_rows.stop) - max(rows.start, last_rows.start)
            stacked = overlap > 0 and shared_rows < 0.25 * min(
                rows.stop - rows.start, last_rows.stop - last_rows.start
            )
            if stacked or overlap > 0.5 * min(cols.stop - cols.start, last_cols.stop - last_cols.start):
                merged[-1] = (
                    slice(min(rows.start, last_rows.start), max(rows.stop, last_rows.stop)),
                    slice(min(cols.start, last_cols.start), max(cols.stop, last_cols.stop)),
                )
                continue
        merged.append((rows, cols))
    return merged


def _attach_fragments(groups: list[tuple[slice, slice]]) -> list[tuple[slice, slice]]:
    """Join a piece under half the tallest group's height (a 5's flag, a stroke broken off) to
    the group nearest it across the page; one further than half that height from any is a speck."""
    tallest = max(rows.stop - rows.start for rows, _ in groups)
    digits = [g for g in groups if g[0].stop - g[0].start >= 0.5 * tallest]
    for rows, cols in (g for g in groups if g[0].stop - g[0].start < 0.5 * tallest):
        gaps = [max(c.start - cols.stop, cols.start - c.stop, 0) for _, c in digits]
        nearest = int(np.argmin(gaps))
        if gaps[nearest] <= 0.5 * tallest:
            near_rows, near_cols = digits[nearest]
            digits[nearest] = (
                slice(min(rows.start, near_rows.start), max(rows.stop, near_rows.stop)),
                slice(min(cols.start, near_cols.start), max(cols.stop, near_cols.stop)),
            )
    return digits


def _split_touching(boxes: list[tuple[slice, slice]], mask: np.ndarray) -> list[tuple[slice, slice]]:
    """Cut ink too wide for one digit: a box wider than 1.6 × its height is cut at the column
    crossing the least ink with a fifth of it or more on either side, again until none is.
    Narrower ones that may be two digits are left whole with their `splits`, for the model."""

    result = []
    pending = list(boxes)
    while pending:
        rows, cols = pending.pop()
        height, width = rows.stop - rows.start, cols.stop - cols.start
        if width <= 1.6 * height or width < 4:
            result.append((rows, cols))
            continue
        cut = int(_cut_paths(mask[rows, cols], count=1, slant=np.inf)[0][0])
        pending += [(rows, slice(cols.start, cols.start + cut)), (rows, slice(cols.start + cut, cols.stop))]
    return result


def find_images(paths: list[str | Path]) -> list[Path]:
    """Files as given, and image files (by suffix) under directories, recursively, sorted;
    `ConfigError` where there are none at all."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    if not found:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ConfigError(f"no image files ({suffixes}) under {', '.join(map(str, paths))}")
    return found


def check_image_files(paths: list[str | Path]) -> tuple[list[Path], list[tuple[Path, ImageError]]]:
    """`find_images`' files split by their headers alone, nothing decoded: those that look like
    images, and each other one with the `ImageError` that says why not (missing, not an image)."""
    readable: list[Path] = []
    refused: list[tuple[Path, ImageError]] = []
    for path in find_images(paths):
        try:
            with _open(path, str(path)) as image:  # closed, whatever the check says
                check_size(image.width, image.height, str(path))
            readable.append(path)
        except ImageError as exc:
            refused.append((path, exc))
    return readable, refused
