import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from digitrec.data import load_dataset, scale
from digitrec.errors import ImageError
from digitrec.preprocess import find_images, limit_pillow_pixels, load_grey, normalise, segment, to_mnist
from digitrec.synth import PhotoStyle, render_photo

from .conftest import MNIST_DIR, png_header, touching


@pytest.fixture(scope="module")
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset("mnist", MNIST_DIR)
    return scale(data.test_images[:40]), data.test_labels[:40]


def _png(array: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, "PNG")
    return out.getvalue()


def test_dark_ink_on_white_paper_becomes_bright_strokes():
    page = np.full((40, 40), 255, np.uint8)
    page[10:30, 19:21] = 0  # one black vertical stroke
    out = to_mnist(page).image
    assert out.shape == (28, 28) and out.max() > 0.8 and out[0].max() == 0 and out[:, 0].max() == 0


def test_an_off_centre_digit_is_centred_by_mass_and_fitted_to_20_pixels():
    page = np.zeros((300, 400), np.uint8)
    page[20:120, 300:330] = 255  # a bar near the top right corner
    digit = to_mnist(page)
    rows, _cols = np.nonzero(digit.image > 0.05)
    assert rows.max() - rows.min() + 1 in (20, 21)
    centre = np.array(np.nonzero(digit.image)).mean(axis=1)
    assert np.allclose(centre, 14, atol=1.0) and digit.box == (300, 20, 330, 120)


def test_mnist_digits_rendered_as_photos_come_back_close_to_the_originals(mnist_digits):
    images, _ = mnist_digits
    rng = np.random.default_rng(0)
    errors = [
        np.abs(to_mnist(render_photo(img, PhotoStyle.random(rng), seed=i)).image - img).mean()
        for i, img in enumerate(images[:12])
    ]
    # Ink saturates at the body of the stroke, so strokes come back a little bolder than MNIST's.
    assert max(errors) < 0.1, errors


def test_light_ink_on_a_dark_board_and_uneven_light_are_handled(mnist_digits):
    images, _ = mnist_digits
    style = PhotoStyle(paper=(40, 40, 50), ink=(230, 230, 220), light_gradient=0.6, jpeg_quality=70)
    out = to_mnist(render_photo(images[0], style)).image
    assert np.abs(out - images[0]).mean() < 0.08


def test_a_shadow_over_most_of_the_border_keeps_dark_ink_dark(mnist_digits):
    images, _ = mnist_digits
    page = np.asarray(
        Image.open(io.BytesIO(render_photo(images[0], PhotoStyle(jpeg_quality=None)))), np.float32
    )
    shade = np.ones((*page.shape[:2], 1), np.float32)
    quarter = page.shape[0] // 4
    shade[:quarter], shade[:, :quarter] = 0.45, 0.45  # the top and left margins, darker than mid-grey
    out = to_mnist((page * shade).astype(np.uint8)).image
    assert np.abs(out - images[0]).mean() < 0.08


@pytest.mark.parametrize("ink, paper", [(0, 255), (255, 0)])
def test_bold_digits_cropped_tight_to_their_ink_keep_their_polarity(mnist_digits, ink, paper):
    images, _ = mnist_digits
    for image in images[:20]:  # two levels, strokes 25-40 px wide, touching the frame
        strokes = np.asarray(Image.fromarray(image).resize((200, 200), Image.Resampling.BILINEAR)) > 0.4
        bold = to_mnist(np.where(strokes, ink, paper).astype(np.uint8)).image
        assert np.abs(bold - to_mnist(strokes.astype(np.float32)).image).mean() < 0.05


def test_strokes_whose_pressure_varies_are_read_whole(mnist_digits):
    from scipy import ndimage

    images, _ = mnist_digits
    rng = np.random.default_rng(0)
    agreement = []
    for image in images[:10]:  # grey 40-160 along the strokes, as a pencil pressed unevenly
        strokes = np.asarray(Image.fromarray(image).resize((200, 200), Image.Resampling.BILINEAR)) > 0.4
        field = ndimage.gaussian_filter(rng.normal(size=strokes.shape), 12)
        page = np.where(strokes, 100 + 60 * field / np.abs(field).max(), 255).astype(np.uint8)
        read, even = to_mnist(page), to_mnist(np.where(strokes, 100, 255).astype(np.uint8))
        assert read.box == even.box  # no light stretch of stroke left out
        agreement.append(np.mean((read.image > 0.1) == (even.image > 0.1)))
    assert np.mean(agreement) > 0.95


def _grey_share(image: np.ndarray) -> float:
    """Of the ink, the share of pixels between ink and paper: MNIST's edges are such greys."""
    ink = image > 0.1
    return float((ink & (image < 0.9)).sum() / max(1, ink.sum()))


def test_hard_two_level_strokes_get_edges_as_soft_as_mnists_and_keep_their_strength(mnist_digits):
    images, _ = mnist_digits
    mnist = np.mean([_grey_share(image) for image in images])
    read = []
    for image in images[:10]:  # drawn on a 12-px canvas, two levels, scaled up 10 times
        cells = np.asarray(Image.fromarray(image).resize((12, 12), Image.Resampling.BOX)) > 0.3
        page = 1 - np.pad(np.kron(cells, np.ones((10, 10))), 30)
        read.append(to_mnist(page).image)
    assert abs(np.mean([_grey_share(image) for image in read]) - mnist) < 0.15, mnist
    assert min(image.max() for image in read) > 0.95


def test_an_already_normalised_array_passes_unchanged(mnist_digits):
    images, _ = mnist_digits
    assert np.array_equal(to_mnist(images[3]).image, images[3])


@pytest.mark.parametrize("fill", [0, 255, 128])
def test_a_blank_image_is_empty(fill):
    assert to_mnist(np.full((64, 48), fill, np.uint8)).empty
    assert segment(np.full((64, 48), fill, np.uint8)) == []


def test_a_noisy_blank_page_is_empty():
    noise = np.random.default_rng(0).normal(200, 3, (120, 160)).clip(0, 255).astype(np.uint8)
    assert to_mnist(noise).empty


def test_black_ink_on_a_transparent_png_is_read_as_ink():
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[10:50, 28:32] = (0, 0, 0, 255)  # opaque black stroke, transparent elsewhere
    out = to_mnist(_png(rgba, "RGBA")).image
    assert out.max() > 0.8 and out[:, :5].max() == 0


def test_exif_orientation_is_applied():
    page = np.zeros((80, 40), np.uint8)
    page[5:25, 5:35] = 255  # ink at the top
    image = Image.fromarray(page, "L")
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180°: ink belongs at the bottom
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    grey = load_grey(out.getvalue())
    assert grey[60:].mean() > grey[:20].mean()


def test_the_first_frame_of_a_gif_is_read():
    frames = [Image.fromarray(np.full((30, 30), v, np.uint8), "L") for v in (10, 200)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    assert load_grey(out.getvalue()).mean() < 0.2


def test_a_row_of_digits_is_segmented_left_to_right(mnist_digits):
    images, _labels = mnist_digits
    row = [images[i] for i in (1, 0, 2, 6)]  # 2, 7, 1, 4
    digits = segment(render_photo(row, PhotoStyle(digit_px=120, jpeg_quality=None)))
    assert len(digits) == 4
    assert [d.box[0] for d in digits] == sorted(d.box[0] for d in digits)
    for digit, original in zip(digits, row, strict=True):
        assert np.abs(digit.image - original).mean() < 0.1


def test_a_broken_stroke_stays_one_digit():
    page = np.zeros((100, 60), np.uint8)
    page[10:45, 28:33] = 255
    page[55:90, 28:33] = 255  # the same stroke with a gap
    assert len(segment(page)) == 1


@pytest.mark.parametrize(("left", "right"), [(1, 4), (3, 1), (4, 3)])
def test_touching_digits_are_offered_whole_and_in_two_pieces(mnist_digits, left, right):
    images, _ = mnist_digits
    pair = touching(images[left], images[right])
    digits = segment(pair)
    # Strokes that touch only faintly fall apart at the ink's threshold; others are offered split.
    first, second = digits if len(digits) == 2 else digits[0].splits[0]
    assert first.box[0] < second.box[0] and first.box[2] < second.box[2]


@pytest.mark.parametrize(("left", "right"), [(4, 27), (34, 10)])  # 4 4 and 7 0, leaning into each other
def test_touching_digits_are_cut_along_the_gap_between_them_not_down_a_column(mnist_digits, left, right):
    images, _ = mnist_digits
    [pair] = segment(touching(images[left], images[right]))
    # No column parts these two without slicing a stroke off one of them; a path bends round it.
    error = min(
        max(np.abs(first.image - images[left]).mean(), np.abs(second.image - images[right]).mean())
        for first, second in pair.splits
    )
    assert error < 0.05


def test_a_wide_zero_is_not_split():
    ys, xs = np.mgrid[0:100, 0:130]
    ring = np.abs(((xs - 65) / 60) ** 2 + ((ys - 50) / 45) ** 2 - 1) < 0.25
    assert len(segment((ring * 255).astype(np.uint8))) == 1


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (b"not an image at all", "not a readable image"),
        (_png(np.zeros((10, 10), np.uint8))[:40], "not a readable image"),
        ("/no/such/file.png", "no such file"),
        (np.zeros((2, 3, 4, 5)), "expected a 2-D image array"),
        (np.full((10, 10), np.nan), "NaN or infinite"),
        (np.array([["a"]]), "numeric image array"),
    ],
)
def test_unreadable_inputs_raise_one_clear_image_error(source, fragment):
    with pytest.raises(ImageError, match=fragment):
        to_mnist(source)


@pytest.fixture
def pillow_limited(monkeypatch):
    """Pillow as the CLI and the server set it up; its settings come back afterwards."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    with warnings.catch_warnings():
        limit_pillow_pixels()
        yield


def test_a_decompression_bomb_is_refused_before_decoding(pillow_limited):
    with pytest.raises(
        ImageError, match=r"^the image bytes: more than 80,000,000 pixels, over the 40,000,000-pixel limit$"
    ):
        to_mnist(png_header(50_000, 50_000))  # 2.5 gigapixels declared in 80 bytes


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(pillow_limited):
    # Pillow only warns between once and twice its limit (silenced there): the refusal must come
    # from the declared size, not from decoding the (truncated) pixels.
    with pytest.raises(
        ImageError, match=r"^the image bytes: 7000×7000 pixels, over the 40,000,000-pixel limit$"
    ):
        to_mnist(png_header(7000, 7000))
    with pytest.raises(ImageError, match=r"^the image bytes: not a readable image \(image file is truncated"):
        to_mnist(png_header(3000, 3000))


def test_pillows_warning_raised_as_an_error_names_the_limit_it_passed(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's own default
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(
            ImageError,
            match=r"^the image bytes: more than 89,478,485 pixels, over the 40,000,000-pixel limit$",
        ):
            to_mnist(png_header(10_000, 10_000))


def test_importing_digitrec_leaves_pillows_limit_alone_and_still_refuses_bombs():
    script = (
        "from PIL import Image; default = Image.MAX_IMAGE_PIXELS\n"
        "from digitrec.preprocess import to_mnist\n"
        "assert Image.MAX_IMAGE_PIXELS == default, Image.MAX_IMAGE_PIXELS\n"
        f"to_mnist({png_header(50_000, 50_000)!r})\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    last_line = run.stderr.strip().splitlines()[-1]
    assert last_line == (
        "digitrec.errors.ImageError: the image bytes: "
        "more than 178,956,970 pixels, over the 40,000,000-pixel limit"
    )


def test_normalise_keeps_aspect_ratio():
    out = normalise(np.ones((40, 10), np.float32))
    rows, cols = np.nonzero(out > 0.5)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 == 5


def test_directories_are_searched_for_image_files_only(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.png", "a/b/two.JPG", "a/notes.txt", "three.webp"):
        (tmp_path / name).write_bytes(b"x")
    found = find_images([tmp_path / "a", tmp_path / "three.webp"])
    assert [p.name for p in found] == ["two.JPG", "one.png", "three.webp"]


def test_files_are_sorted_by_their_headers_alone(tmp_path):
    from digitrec.preprocess import check_image_files

    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("L", (40, 40)).save(tmp_path / "blank.png")
    (tmp_path / "wide.png").write_bytes(png_header(20_000, 20))  # refused from its declared size
    paths = [tmp_path / name for name in ("missing.png", "notes.txt", "blank.png", "wide.png")]
    readable, refused = check_image_files(paths)
    assert readable == [tmp_path / "blank.png"]
    assert [(path.name, str(error).split(": ", 1)[1][:20]) for path, error in refused] == [
        ("missing.png", "no such file"),
        ("notes.txt", "not a readable image"),
        ("wide.png", "20000×20 pixels, ove"),
    ]


def test_a_folder_without_images_is_a_config_error(tmp_path):
    from digitrec.errors import ConfigError

    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ConfigError, match=r"no image files \(.bmp, .gif"):
        find_images([tmp_path])


def test_ink_apart_in_digit_sized_groups_counts_as_that_many_digits(mnist_digits):
    images, _ = mnist_digits
    row = render_photo([images[0], images[1], images[2]], PhotoStyle(digit_px=80, jpeg_quality=None))
    assert to_mnist(row).ink_groups == 3
    assert to_mnist(render_photo(images[0], PhotoStyle(digit_px=80))).ink_groups == 1
    page = np.full((60, 120), 255, np.uint8)
    page[10:50, 20:24] = 0
    page[45:48, 60:66] = 0  # a speck far from the stroke, too small to be a digit
    assert to_mnist(page).ink_groups == 1
