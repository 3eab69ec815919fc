import csv
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from digitrec.corrections import CorrectionStore, default_store_path, read_examples
from digitrec.data import read_idx
from digitrec.errors import ConfigError, DataError, InputError


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


@pytest.fixture
def store(tmp_path) -> CorrectionStore:
    return CorrectionStore(tmp_path / "corrections.sqlite3")


def test_corrections_come_back_as_added_in_insertion_order(store):
    images, labels = _images(5), [3, 1, 4, 1, 5]
    ids = [store.add("ada", image, label, predicted=7) for image, label in zip(images, labels, strict=True)]
    got_images, got_labels = store.examples("ada")
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert np.array_equal(got_images, images) and got_labels.tolist() == labels
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8


def test_float_images_in_zero_to_one_are_stored_as_uint8_pixels(store):
    image = np.zeros((28, 28), np.float32)
    image[10, 10], image[11, 11] = 1.0, 0.5
    store.add("ada", image, 2)
    [stored] = store.examples("ada")[0]
    assert stored[10, 10] == 255 and stored[11, 11] == 128 and stored.sum() == 255 + 128


def test_profiles_are_kept_apart_and_deleting_one_leaves_the_others(store):
    for i in range(3):
        store.add("ada", _images(1, i)[0], i)
    store.add("grace.h", _images(1, 9)[0], 9, source="page")
    assert store.profiles() == {"ada": 3, "grace.h": 1}
    assert store.examples("grace.h")[1].tolist() == [9] and store.count("ada") == 3
    assert store.delete("ada") == 3
    assert store.profiles() == {"grace.h": 1} and store.count("ada") == 0
    assert store.examples("ada")[0].shape == (0, 28, 28)


def test_an_idx_export_reads_back_equal(store, tmp_path):
    images, labels = _images(4), [0, 9, 2, 2]
    for image, label in zip(images, labels, strict=True):
        store.add("ada", image, label)
    assert store.export("ada", tmp_path / "out") == 4
    assert np.array_equal(read_idx(tmp_path / "out" / "images-idx3-ubyte"), images)
    assert read_idx(tmp_path / "out" / "labels-idx1-ubyte").tolist() == labels


def test_a_png_export_writes_one_image_per_example_and_a_labels_csv_that_reads_back(store, tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    for i, image in enumerate(images):
        image[8:20, 10 + 3 * i : 13 + 3 * i] = 200  # a stroke, away from the border, in a new place each
        store.add("ada", image, i + 4)
    store.export("ada", tmp_path / "out", fmt="png")
    with open(tmp_path / "out" / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["file", "label"], ["00000.png", "4"], ["00001.png", "5"], ["00002.png", "6"]]
    read_images, read_labels = read_examples(tmp_path / "out")
    assert np.array_equal(read_images, images) and read_labels.tolist() == [4, 5, 6]


def test_an_export_replaces_an_earlier_export_but_never_a_folder_of_other_files(store, tmp_path):
    store.add("ada", _images(1)[0], 1)
    store.export("ada", tmp_path / "out", fmt="png")
    store.export("ada", tmp_path / "out", fmt="idx")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["images-idx3-ubyte", "labels-idx1-ubyte"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not an earlier export"):
        store.export("ada", tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_exporting_a_profile_without_corrections_names_the_ones_there_are(store, tmp_path):
    store.add("ada", _images(1)[0], 1)
    with pytest.raises(ConfigError, match="did you mean ada"):
        store.export("adda", tmp_path / "out")
    with pytest.raises(ConfigError, match="unknown export format 'jpg'"):
        store.export("ada", tmp_path / "out", fmt="jpg")


def test_examples_are_read_from_sub_folders_named_by_digit(tmp_path):
    from PIL import Image

    for digit in (3, 8):
        (tmp_path / str(digit)).mkdir()
        page = np.full((60, 40), 255, np.uint8)  # dark ink on white paper, as a scan
        page[10:50, 18 + digit : 22 + digit] = 0
        Image.fromarray(page).save(tmp_path / str(digit) / "a.png")
    images, labels = read_examples(tmp_path)
    assert images.shape == (2, 28, 28) and images.dtype == np.uint8 and labels.tolist() == [3, 8]
    assert images[:, 2:-2, 2:-2].max() > 200 and images[:, 0].max() == 0  # white ink, centred, on black


def test_a_labels_csv_with_a_label_that_is_no_digit_names_its_line(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label\na.png,7\n\nb.png,12\n")
    with pytest.raises(DataError, match=r"labels.csv, line 4: expected FILE,DIGIT .* got b.png,12"):
        read_examples(tmp_path)


def test_a_folder_without_examples_says_what_it_should_hold(tmp_path):
    with pytest.raises(DataError, match="sub-folders 0-9"):
        read_examples(tmp_path)


def test_a_corrupt_file_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "corrections.sqlite3"
    CorrectionStore(path).add("ada", _images(1)[0], 1)
    for damaged in (os.urandom(8192), path.read_bytes()[:5000]):
        path.write_bytes(damaged)
        with pytest.raises(
            DataError, match=rf"{re.escape(str(path))}: not a readable corrections store.*move it aside"
        ):
            CorrectionStore(path)
        assert path.read_bytes() == damaged


def test_another_programs_database_is_refused_and_left_as_it_was(tmp_path):
    for i, setup in enumerate(["CREATE TABLE songs (title TEXT)", "PRAGMA application_id = 42"]):
        path = tmp_path / f"foreign{i}.sqlite3"
        with sqlite3.connect(path) as connection:
            connection.execute(setup)
        connection.close()
        before = path.read_bytes()
        with pytest.raises(DataError, match="another program's SQLite database"):
            CorrectionStore(path)
        assert path.read_bytes() == before


def test_a_store_from_a_newer_digitrec_is_refused(tmp_path):
    path = tmp_path / "corrections.sqlite3"
    CorrectionStore(path)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(DataError, match=r"schema 99.*upgrade digitrec"):
        CorrectionStore(path)


def test_a_folder_where_the_file_should_be_is_refused(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        CorrectionStore(tmp_path)


def test_every_correction_answered_survives_a_kill_at_any_moment(tmp_path):
    path = tmp_path / "corrections.sqlite3"
    code = (
        "import sys, numpy as np\n"
        "from digitrec.corrections import CorrectionStore\n"
        "store = CorrectionStore(sys.argv[1])\n"
        "image = np.arange(784, dtype=np.uint32).reshape(28, 28).astype(np.uint8)\n"
        "for i in range(100_000):\n"
        "    print(store.add('ada', image, i % 10), flush=True)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        answered = [int(child.stdout.readline()) for _ in range(40)]
        os.kill(child.pid, signal.SIGKILL)
        answered += [int(line) for line in child.stdout.read().split()]  # printed before the kill landed
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    stored = {row[0] for row in connection.execute("SELECT id FROM corrections")}
    connection.close()
    assert set(answered) <= stored and CorrectionStore(path).count("ada") == len(stored) >= 40


def test_adds_from_many_threads_lose_nothing(store):
    def add_some(worker: int) -> None:
        for i in range(20):
            store.add(f"w{worker % 2}", _images(1, worker)[0], i % 10)

    threads = [threading.Thread(target=add_some, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.profiles() == {"w0": 60, "w1": 60}


@pytest.mark.parametrize(
    ("profile", "image", "label", "error", "fragment"),
    [
        ("ada", np.zeros((28, 28), np.uint8), 10, InputError, "label 10: expected a digit"),
        ("ada", np.zeros((28, 28), np.uint8), True, InputError, "label True"),
        ("ada", np.zeros((32, 32), np.uint8), 1, InputError, r"shaped \(28, 28\), got \(32, 32\)"),
        ("ada", np.full((28, 28), 2.0), 1, InputError, r"values in \[0, 1\]"),
        ("", np.zeros((28, 28), np.uint8), 1, ConfigError, "profile name ''"),
        ("../etc", np.zeros((28, 28), np.uint8), 1, ConfigError, "starting with a letter or digit"),
        ("a b", np.zeros((28, 28), np.uint8), 1, ConfigError, "profile name 'a b'"),
        ("x" * 65, np.zeros((28, 28), np.uint8), 1, ConfigError, "1-64 letters"),
    ],
)
def test_bad_arguments_are_refused_with_what_was_expected(store, profile, image, label, error, fragment):
    with pytest.raises(error, match=fragment):
        store.add(profile, image, label)
    assert store.profiles() == {}


def test_the_store_lives_in_the_users_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("DIGITREC_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "digitrec" / "corrections.sqlite3"
    monkeypatch.setenv("DIGITREC_HOME", str(tmp_path / "home"))
    assert default_store_path() == Path(tmp_path / "home" / "corrections.sqlite3")
