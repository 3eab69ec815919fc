"""Files written so that a crash at any moment leaves the old version or the new, never half of one."""

import contextlib
import errno
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def user_data_dir() -> Path:
    """Where digitrec keeps what a user makes (corrections, adapted models): $DIGITREC_HOME, else
    $XDG_DATA_HOME/digitrec, else ~/.local/share/digitrec."""
    if home := os.environ.get("DIGITREC_HOME"):
        return Path(home)
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return Path(xdg) / "digitrec"
    return Path.home() / ".local" / "share" / "digitrec"


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def reported_as(target: Path) -> Iterator[None]:
    """An OSError in the block names `target`, the path the user gave, not a temporary beside it.

    A file where a folder of the path should be (`mkdir` says "File exists") is "Not a directory".
    """
    try:
        yield
    except FileExistsError as exc:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target)) from exc
    except OSError as exc:
        if exc.strerror is None:  # no errno to restate
            raise
        raise OSError(exc.errno, exc.strerror, str(target)) from exc


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename.

    The temporary file lives in the same directory so `os.replace` is atomic on POSIX; on failure
    it is removed and `target` is untouched.
    """
    with reported_as(target):
        fd, tmp_name = tempfile.mkstemp(**_temporary_beside(target))
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a saved model or dataset is not secret
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _temporary_beside(target: Path) -> dict:
    """`tempfile` arguments for a temporary beside `target`, its folder made and stale ones cleared.

    One naming for files and folders, the one `remove_stale_temporaries` looks for. The suffix
    keeps the real extension last: Keras insists that a model path ends in ".keras".
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    return {"prefix": f".{target.stem}.", "suffix": f".part{target.suffix}", "dir": target.parent}


def remove_stale_temporaries(target: Path, older_than_s: float = 3600.0) -> None:
    """Delete what `atomic_path` or `atomic_dir` left beside `target` when its process was killed.

    Only temporaries untouched for `older_than_s`: a younger one may belong to a writer that is
    still at work in another process.
    """
    cutoff = time.time() - older_than_s
    for leftover in target.parent.glob(f".{target.stem}.*.part{target.suffix}"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if leftover.stat().st_mtime < cutoff:
                _remove(leftover)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside `target`; on success it takes `target`'s place.

    POSIX cannot swap two folders in one rename, so the old version steps aside to
    `.NAME.old` first and is deleted once the new one is in: a kill between the two renames
    leaves the old version there, never half of either. On failure `target` is untouched.
    """
    with reported_as(target):
        tmp = Path(tempfile.mkdtemp(**_temporary_beside(target)))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes folders private; an exported model is not secret
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            _remove(old)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        if old.exists():
            _remove(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a swap


def _remove(path: Path) -> None:
    """Delete a file or a whole folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def atomic_write_text(target: Path, text: str) -> None:
    """Write `text` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 nowhere, unless the block fails.

    TensorFlow and LiteRT print start-up notices from C++ before any Python setting can stop
    them. They are held in a temporary file and replayed only if the block raises.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (a SavedModel, say)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
