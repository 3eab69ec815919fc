"""digitrec: handwritten digit recognition on TensorFlow/Keras 3.

    from digitrec import recipe, train, evaluate, load_model
    result = train(recipe("fast"), "models/fast")

`import digitrec` is light: TensorFlow loads only when a name that needs it is first used.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DigitrecError": "digitrec.errors",
    "ConfigError": "digitrec.errors",
    "DataError": "digitrec.errors",
    "ModelError": "digitrec.errors",
    "ImageError": "digitrec.errors",
    "load_dataset": "digitrec.data",
    "read_idx": "digitrec.data",
    "write_idx": "digitrec.data",
    "build": "digitrec.models",
    "load_model": "digitrec.artifact",
    "TrainConfig": "digitrec.recipes",
    "recipe": "digitrec.recipes",
    "train": "digitrec.train",
    "evaluate": "digitrec.evaluate",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'digitrec' has no attribute {name!r}")
