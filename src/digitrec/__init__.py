"""digitrec: handwritten digit recognition on TensorFlow/Keras 3.

    from digitrec import Recognizer, recipe, train, evaluate, export, explain, adapt_profile
    [answer] = Recognizer.load("default").predict(["photo.jpg"])
    result = train(recipe("fast"), "runs/fast")
    evaluate(result.model_dir)["accuracy"]
    explain(Recognizer.load("default"), answer.image).saliency   # why it read that
    adapt_profile("ada")                         # learn ada's hand from her corrections

`import digitrec` is light: TensorFlow loads only when a name that needs it is first used, and
never for a `.tflite` model. The errors digitrec raises on purpose are drawn in `digitrec.errors`.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Recognizer": "digitrec.recognizer",
    "Prediction": "digitrec.recognizer",
    "TrainConfig": "digitrec.recipes",
    "recipe": "digitrec.recipes",
    "TrainResult": "digitrec.fitting",
    "train": "digitrec.training",
    "evaluate": "digitrec.evaluation",
    "export": "digitrec.exporter",
    "explain": "digitrec.explanation",
    "adapt_profile": "digitrec.profiles",
    "DigitrecError": "digitrec.errors",
    "ConfigError": "digitrec.errors",
    "DataError": "digitrec.errors",
    "ModelError": "digitrec.errors",
    "ImageError": "digitrec.errors",
    "InputError": "digitrec.errors",
}
__all__ = list(_LAZY)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports on first use
    from digitrec.errors import ConfigError as ConfigError
    from digitrec.errors import DataError as DataError
    from digitrec.errors import DigitrecError as DigitrecError
    from digitrec.errors import ImageError as ImageError
    from digitrec.errors import InputError as InputError
    from digitrec.errors import ModelError as ModelError
    from digitrec.evaluation import evaluate as evaluate
    from digitrec.explanation import explain as explain
    from digitrec.exporter import export as export
    from digitrec.fitting import TrainResult as TrainResult
    from digitrec.profiles import adapt_profile as adapt_profile
    from digitrec.recipes import TrainConfig as TrainConfig
    from digitrec.recipes import recipe as recipe
    from digitrec.recognizer import Prediction as Prediction
    from digitrec.recognizer import Recognizer as Recognizer
    from digitrec.training import train as train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the same object on every later access, without this hook
        return value
    raise AttributeError(f"module 'digitrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
