"""The answers a user corrected, kept per profile to learn their handwriting from.

    store = CorrectionStore()                          # corrections.sqlite3 in the user's data folder
    store.add("ada", image, label=7, predicted=1, source="page")
    images, labels = store.examples("ada")             # uint8 (n, 28, 28) and (n,), as MNIST
    store.export("ada", Path("ada-digits"), fmt="png")

Each correction is the 28×28 image the model saw, the right label and what the model answered.
They live in one SQLite database so that a server's threads, a CLI run and the page can add to
it at once; each `add` is its own transaction, on disk (WAL, `synchronous=FULL`) before it
returns, so a kill at any moment loses nothing already answered. A file that is not a store of
this version is refused, never reset: it may be a user's only copy of their corrections.
"""

import contextlib
import csv
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from digitrec.contract import IMAGE_SHAPE, NUM_CLASSES
from digitrec.data import write_idx
from digitrec.errors import ConfigError, DataError, ImageError, InputError, did_you_mean
from digitrec.files import atomic_dir, user_data_dir
from digitrec.preprocess import IMAGE_SUFFIXES, read

STORE_FILE = "corrections.sqlite3"
APPLICATION_ID = 0x64526563  # "dRec" in SQLite's header: tells our file from another program's
SCHEMA_VERSION = 1
SOURCES = ("page", "api", "cli")
PROFILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # never "..": names may become folders
IDX_FILES = ("images-idx3-ubyte", "labels-idx1-ubyte")
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another's transaction before giving up
_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: an id once returned names one correction
    profile TEXT NOT NULL,
    image BLOB NOT NULL CHECK (length(image) = {IMAGE_SHAPE[0] * IMAGE_SHAPE[1]}),
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
    predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),
    source TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS corrections_by_profile ON corrections (profile, id);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""


def default_store_path() -> Path:
    """`corrections.sqlite3` in the user's data folder (`digitrec.files.user_data_dir`)."""
    return user_data_dir() / STORE_FILE


class CorrectionStore:
    """Corrections in one SQLite file, each row a profile's 28×28 uint8 image and its right label.

    A connection per call keeps it safe for threads; SQLite's locks, for processes. The file is
    checked when the store is opened, so a damaged or foreign one fails at start-up, not at the
    first correction.
    """

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a folder, not a corrections store; pass a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                f"{self.path}: cannot make its folder ({exc.strerror}); pass another path"
            ) from exc
        with self._connection() as connection:
            # Reads every page once: a truncated or damaged file fails here, not mid-training.
            [(verdict,)] = connection.execute("PRAGMA quick_check(1)").fetchall()
            if verdict != "ok":
                raise DataError(f"{self.path}: the corrections store is damaged ({verdict}); {_RESTORE}")

    def add(
        self, profile: str, image: np.ndarray, label: int, predicted: int | None = None, source: str = "api"
    ) -> int:
        """Keep one correction; its id once it is on disk."""
        row = (
            checked_profile(profile),
            _uint8_image(image).tobytes(),
            _digit(label, "label"),
            None if predicted is None else _digit(predicted, "predicted"),
            _checked_source(source),
            datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        with self._connection() as connection:  # autocommit: the INSERT is its own transaction
            cursor = connection.execute(
                "INSERT INTO corrections (profile, image, label, predicted, source, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def examples(self, profile: str) -> tuple[np.ndarray, np.ndarray]:
        """A profile's images, uint8 `(n, 28, 28)` white on black, and labels `(n,)`, oldest first."""
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT image, label FROM corrections WHERE profile = ? ORDER BY id",
                (checked_profile(profile),),
            ).fetchall()
        images = np.frombuffer(bytearray(b"".join(r[0] for r in rows)), np.uint8).reshape(-1, *IMAGE_SHAPE)
        return images, np.array([r[1] for r in rows], np.uint8)

    def count(self, profile: str) -> int:
        """How many corrections a profile has (0 for one never seen)."""
        with self._connection() as connection:
            query = "SELECT count(*) FROM corrections WHERE profile = ?"
            return connection.execute(query, (checked_profile(profile),)).fetchone()[0]

    def profiles(self) -> dict[str, int]:
        """Each profile's name and count of corrections, by name."""
        with self._connection() as connection:
            query = "SELECT profile, count(*) FROM corrections GROUP BY profile ORDER BY profile"
            return dict(connection.execute(query).fetchall())

    def delete(self, profile: str) -> int:
        """Forget a profile's corrections; how many there were."""
        with self._connection() as connection:
            cursor = connection.execute(
                "DELETE FROM corrections WHERE profile = ?", (checked_profile(profile),)
            )
        return cursor.rowcount

    def export(self, profile: str, out_dir: Path, fmt: str = "idx") -> int:
        """Write a profile's corrections to `out_dir`, replaced whole; how many were written.

        `idx`: `images-idx3-ubyte` and `labels-idx1-ubyte`, as MNIST's files. `png`: one PNG per
        example and `labels.csv` (`file,label`), which `read_examples` reads back.
        """
        if fmt not in ("idx", "png"):
            raise ConfigError(
                f"unknown export format {fmt!r}; choose idx or png{did_you_mean(fmt, ['idx', 'png'])}"
            )
        out_dir = Path(out_dir)
        _check_replaceable(out_dir)
        images, labels = self.examples(profile)
        if not len(images):
            known = self.profiles()
            raise ConfigError(
                f"no corrections in profile {profile!r}{did_you_mean(profile, known)}; "
                f"profiles: {', '.join(known) or 'none yet'}"
            )
        with atomic_dir(out_dir) as tmp:
            if fmt == "idx":
                for name, array in zip(IDX_FILES, (images, labels), strict=True):
                    write_idx(tmp / name, array)
            else:
                names = [f"{i:05d}.png" for i in range(len(images))]
                for name, image in zip(names, images, strict=True):
                    Image.fromarray(image, "L").save(tmp / name)
                with open(tmp / "labels.csv", "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerows([("file", "label"), *zip(names, labels.tolist(), strict=True)])
        return len(images)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection to a checked store, made if the file is new; SQLite's errors as `DataError`."""
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from exc
        try:
            self._check_or_create(connection)
            connection.execute("PRAGMA synchronous = FULL")  # fsync at each commit: survives power loss too
            yield connection
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from exc
        finally:
            connection.close()

    def _check_or_create(self, connection: sqlite3.Connection) -> None:
        """Make the table in an empty file; refuse another program's database or a newer schema."""
        app_id, version, objects = (
            connection.execute(query).fetchone()[0]
            for query in (
                "PRAGMA application_id",
                "PRAGMA user_version",
                "SELECT count(*) FROM sqlite_master",
            )
        )
        if (app_id, version, objects) == (0, 0, 0):
            connection.executescript(_SCHEMA)  # idempotent: processes racing to create it all succeed
        elif app_id != APPLICATION_ID:
            raise DataError(
                f"{self.path}: another program's SQLite database (application_id {app_id:#x}), "
                "not a digitrec corrections store; pass another path or set DIGITREC_HOME"
            )
        elif version != SCHEMA_VERSION:
            newer = "a newer digitrec wrote it: upgrade digitrec" if version > SCHEMA_VERSION else _RESTORE
            raise DataError(
                f"{self.path}: store schema {version}, this digitrec reads {SCHEMA_VERSION}; {newer}"
            )
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode = WAL")  # readers never block the writer; persistent


_RESTORE = "restore it from a backup, or move it aside to start a new one"


def _store_error(path: Path, exc: sqlite3.Error) -> DataError:
    """SQLite's complaint as one line that says what to do."""
    message = str(exc)
    if "not a database" in message or "malformed" in message:
        return DataError(f"{path}: not a readable corrections store ({message}); {_RESTORE}")
    if "readonly" in message or "unable to open" in message:
        return DataError(f"{path}: cannot write the corrections store ({message}); check its permissions")
    if "locked" in message:
        return DataError(f"{path}: busy for over {BUSY_TIMEOUT_S:g} s ({message}); try again")
    return DataError(f"{path}: the corrections store failed ({message})")


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder holding anything an export would not have written."""
    if not out_dir.exists():
        return
    ours = {*IDX_FILES, "labels.csv"}
    if not out_dir.is_dir() or any(p.name not in ours and p.suffix != ".png" for p in out_dir.iterdir()):
        raise ConfigError(f"{out_dir}: exists and is not an earlier export; pass a new folder")


def checked_profile(profile: str) -> str:
    """`profile` if it is a valid name (it may become a folder's), else `ConfigError`."""
    if not isinstance(profile, str) or not PROFILE.fullmatch(profile):
        raise ConfigError(
            f"profile name {profile!r}: expected 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (e.g. 'ada')"
        )
    return profile


def _checked_source(source: str) -> str:
    if source not in SOURCES:
        raise ConfigError(f"source {source!r}: expected one of {', '.join(SOURCES)}")
    return source


def _digit(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < NUM_CLASSES:
        raise InputError(f"{what} {value!r}: expected a digit, an integer from 0 to 9")
    return int(value)


def _uint8_image(image: np.ndarray) -> np.ndarray:
    """One image as the model sees it, as uint8 0-255: floats in [0, 1] are scaled and rounded."""
    array = np.asarray(image)
    if array.shape != IMAGE_SHAPE:
        raise InputError(f"expected one image shaped (28, 28), got {array.shape}; normalise it first")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"expected uint8 pixels or floats in [0, 1], got {array.dtype}")
    if not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        raise InputError("expected pixel values in [0, 1] (white ink on black); divide 0-255 pixels by 255")
    return np.round(array * 255).astype(np.uint8)


def read_examples(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """A folder of a user's own digits as uint8 images `(n, 28, 28)` and labels `(n,)`.

    The folder holds a `labels.csv` of `file,label` (what `export(fmt="png")` writes), or else
    sub-folders `0` to `9` of image files. Each image is normalised as MNIST, as the model
    would see it (`digitrec.preprocess`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; pass a folder of sub-folders 0-9 or with a labels.csv")
    listing = folder / "labels.csv"
    pairs = _listed(listing) if listing.is_file() else _by_folder(folder)
    if not pairs:
        raise DataError(
            f"{folder}: no examples; expected sub-folders 0-9 of images or a labels.csv of file,label"
        )
    images = []
    for path, _ in pairs:
        digit = read(folder / path)[0]
        if digit.empty:
            raise ImageError(f"{folder / path}: no ink found; remove it or draw the digit darker")
        images.append(_uint8_image(digit.image))
    return np.stack(images), np.array([label for _, label in pairs], np.uint8)


def _listed(listing: Path) -> list[tuple[str, int]]:
    with open(listing, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets start with a BOM
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["file", "label"]:
        raise DataError(
            f"{listing}: expected the header file,label, got {','.join(rows[0]) if rows else 'nothing'}"
        )
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:  # a blank line
            continue
        if len(row) != 2 or row[1].strip() not in [str(d) for d in range(NUM_CLASSES)]:
            raise DataError(
                f"{listing}, line {line}: expected FILE,DIGIT with a digit 0-9, got {','.join(row)}"
            )
        pairs.append((row[0], int(row[1])))
    return pairs


def _by_folder(folder: Path) -> list[tuple[str, int]]:
    return [
        (str(path.relative_to(folder)), digit)
        for digit in range(NUM_CLASSES)
        for path in sorted((folder / str(digit)).glob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
