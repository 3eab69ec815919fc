"""The errors digitrec raises on purpose.

    DigitrecError                  every error raised on purpose; the CLI prints it on one line
    ├── ConfigError (ValueError)   a bad flag, an unknown model or dataset, a value out of range
    ├── DataError                  a dataset missing, truncated, malformed or failing its checksum
    ├── ModelError                 weights missing or corrupt, a file that is not a digitrec model
    ├── ImageError (ValueError)    an image that cannot be decoded, is too large, or has no sense
    └── InputError (ValueError)    arrays that break the models' input contract (`digitrec.contract`)

Each message says what arrived, what was expected, and how to fix it. Anything else that escapes
is a bug.
"""

import difflib


def did_you_mean(word: str, choices) -> str:
    """`; did you mean NAME?` for the choice closest to a misspelt `word`, or nothing."""
    return "".join(
        f"; did you mean {close}?" for close in difflib.get_close_matches(word, list(choices), n=1)
    )


class DigitrecError(Exception):
    """Every error digitrec raises on purpose."""


class ConfigError(DigitrecError, ValueError):
    """A bad flag, an unknown model or dataset name, a value out of range."""


class DataError(DigitrecError):
    """A dataset missing, truncated, malformed or failing its checksum."""


class ModelError(DigitrecError):
    """Weights missing or corrupt, or a file that is not a digitrec model."""


class ImageError(DigitrecError, ValueError):
    """An image that cannot be decoded, is too large, or has an impossible shape."""


class InputError(DigitrecError, ValueError):
    """Arrays that are not `(n, 28, 28)` floats in [0, 1], the input every model takes."""


# Where an optional dependency is missing: the extra that installs it.
_EXTRAS = {"keras": "train", "tensorflow": "train", "matplotlib": "train", "tensorboard": "train"}
_EXTRAS |= dict.fromkeys(("fastapi", "starlette", "uvicorn", "multipart", "prometheus_client"), "serve")


def user_message(exc: BaseException) -> str | None:
    """What to tell a user about `exc` in one line, or None where it is a bug to show in full.

    `/a/b: Not a directory` rather than Python's `[Errno 20] Not a directory: '/a/b'`; a missing
    optional dependency names the extra that installs it (`pip install 'digitrec[train]'`).
    """
    if isinstance(exc, ModuleNotFoundError):
        extra = _EXTRAS.get((exc.name or "").partition(".")[0])
        return extra and f"this needs {exc.name}, which is not installed: pip install 'digitrec[{extra}]'"
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) if isinstance(exc, DigitrecError | OSError) else None
