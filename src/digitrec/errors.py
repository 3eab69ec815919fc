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
