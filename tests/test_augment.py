import numpy as np

from digitrec.augment import RandomStrokeWidth, RandomWarp, augmenter


def _bar() -> np.ndarray:
    images = np.zeros((4, 28, 28), np.float32)
    images[:, 6:22, 13:15] = 1.0
    return images


def test_augmentation_is_the_identity_outside_training():
    images = _bar()
    assert np.array_equal(np.asarray(augmenter(seed=0)(images, training=False)), images)


def test_augmentation_moves_ink_but_keeps_shape_and_range():
    out = np.asarray(augmenter(seed=0)(_bar(), training=True))
    assert out.shape == (4, 28, 28) and out.min() >= 0 and out.max() <= 1 + 1e-6
    assert not np.allclose(out, _bar())


def test_stroke_width_thickens_and_thins():
    ink = _bar().sum(axis=(1, 2))
    thick = np.asarray(RandomStrokeWidth(1.0, seed=1)(np.tile(_bar(), (8, 1, 1)), training=True)).sum(
        axis=(1, 2)
    )
    assert thick.max() > ink[0] * 1.2 and thick.min() < ink[0] * 0.9


def test_elastic_distortion_bends_strokes_but_keeps_the_ink():
    images = _bar()
    elastic = RandomWarp(0, 0, 0, alpha=34.0, elastic_share=1.0, seed=2)
    out = np.asarray(elastic(images, training=True))
    assert out.shape == images.shape and not np.allclose(out, images)
    assert abs(out.sum() - images.sum()) < 0.35 * images.sum()
    assert np.array_equal(np.asarray(elastic(images, training=False)), images)


def test_elastic_distortion_leaves_the_rest_of_the_images_exact():
    images = np.tile(_bar()[:1], (200, 1, 1))
    out = np.asarray(RandomWarp(0, 0, 0, alpha=34.0, elastic_share=0.5, seed=2)(images, training=True))
    exact = np.all(out == images, axis=(1, 2))
    assert 60 < exact.sum() < 140, exact.sum()


def _line(n: int) -> np.ndarray:
    images = np.zeros((n, 28, 28), np.float32)
    images[:, 4:24, 14] = 1.0
    return images


def test_a_shift_moves_each_row_of_a_line_whole():
    out = np.asarray(RandomWarp(0, shift=0.1, zoom=0, seed=4)(_line(32), training=True))
    rows = out[:, 8:20]  # clear of the ends, which move up and down
    np.testing.assert_allclose(rows.sum(axis=2), 1.0, atol=1e-5)  # bilinear keeps a row's ink
    centre = (rows * np.arange(28)).sum(axis=2) / rows.sum(axis=2)
    assert np.abs(centre - 14).max() <= 0.1 * 28 + 1e-4 and np.abs(centre - 14).max() > 1.0
    assert np.ptp(centre, axis=1).max() < 1e-4  # a shift, not a slant


def test_rotation_slants_a_line_within_its_range():
    out = np.asarray(RandomWarp(rotation_deg=10, shift=0, zoom=0, seed=5)(_line(32), training=True))
    rows = out[:, 8:20]
    centre = (rows * np.arange(28)).sum(axis=2) / rows.sum(axis=2)
    slope = np.polyfit(np.arange(8, 20), centre.T, 1)[0]
    assert np.abs(slope).max() <= np.tan(np.deg2rad(10)) + 1e-3 and np.abs(slope).max() > 0.05


def test_one_resampling_blurs_less_than_the_keras_layers_in_a_row():
    import keras

    fill = {"fill_mode": "constant", "fill_value": 0.0}
    keras_chain = keras.Sequential(
        [
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.RandomRotation(10 / 360, seed=1, **fill),
            keras.layers.RandomTranslation(0.1, 0.1, seed=2, **fill),
            keras.layers.RandomZoom(0.1, 0.1, seed=3, **fill),
            keras.layers.Reshape((28, 28)),
        ]
    )
    warp = RandomWarp(10, 0.1, 0.1, seed=1)
    lines = _line(64)
    chained = np.asarray(keras_chain(lines, training=True)).max(axis=2)[:, 8:20].mean()
    warped = np.asarray(warp(lines, training=True)).max(axis=2)[:, 8:20].mean()
    assert warped > chained + 0.05, (warped, chained)


def test_bilinear_sampling_matches_keras_map_coordinates():
    import keras

    from digitrec.augment import bilinear_sample

    rng = np.random.default_rng(0)
    images = rng.random((3, 28, 28)).astype("float32")
    rows, cols = (rng.uniform(-3, 31, (3, 28, 28)).astype("float32") for _ in range(2))
    batch = np.broadcast_to(np.arange(3, dtype="float32")[:, None, None], rows.shape)
    expected = keras.ops.image.map_coordinates(images, np.stack([batch, rows, cols]), order=1)
    np.testing.assert_allclose(bilinear_sample(images, rows, cols), expected, atol=1e-5)


def test_a_model_trained_with_elastic_augmentation_saves_and_loads(tmp_path):
    from digitrec.recipes import recipe
    from digitrec.recognizer import Recognizer
    from digitrec.training import train

    train(
        # 300 images: the last batch is smaller, so the graph is traced without a batch size.
        recipe("fast", epochs=1, train_limit=300, augment=True, elastic_alpha=34.0),
        tmp_path / "m",
        log=lambda line: None,
    )
    assert Recognizer.load(tmp_path / "m").keras_model.name == "fast"


def test_shear_slants_a_vertical_bar():
    from digitrec.augment import augmenter

    shear_only = augmenter(rotation_deg=0, shift=0, zoom=0, stroke=0, shear=0.4, seed=1)
    out = np.asarray(shear_only(np.tile(_bar()[:1], (16, 1, 1)), training=True))
    leans = []
    for image in out:
        inked = np.flatnonzero(image.sum(1) > 0.5)
        top, bottom = image[inked[0]], image[inked[-1]]
        leans.append(abs(top @ np.arange(28) / top.sum() - bottom @ np.arange(28) / bottom.sum()))
    assert max(leans) > 1.0  # the bar leans: its ends sit in different columns


def test_shift_and_zoom_are_drawn_independently():
    from digitrec.augment import augmenter

    square = np.zeros((256, 28, 28), np.float32)
    square[:, 10:18, 10:18] = 1.0
    shift_and_zoom = augmenter(rotation_deg=0, shift=0.1, zoom=0.1, stroke=0, seed=3)
    out = np.asarray(shift_and_zoom(square, training=True))
    columns = np.arange(28)
    ink = out.sum(axis=1)  # (n, 28): ink per column
    centre = (ink * columns).sum(1) / ink.sum(1)
    spread = np.sqrt((ink * (columns - centre[:, None]) ** 2).sum(1) / ink.sum(1))
    assert abs(np.corrcoef(centre, spread)[0, 1]) < 0.5  # with one seed for both: 0.99
