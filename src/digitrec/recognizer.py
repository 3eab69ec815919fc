"""The one way to run a model: `Recognizer.load(...)`, then `.predict(images)`.

    from digitrec import Recognizer
    recognizer = Recognizer.load("default")            # or a model directory, .keras, .tflite, SavedModel
    [answer] = recognizer.predict(["photo.jpg"])
    answer.digit, answer.confidence, answer.uncertain
    [answer] = recognizer.predict(["envelope.png"], multi=True)
    answer.number, [d.box for d in answer.digits]

Images may be paths, encoded bytes, PIL images or arrays; each is normalised as MNIST by
`digitrec.preprocess` and the model sees them in batches. `predict_proba` takes images that
already meet the input contract (`digitrec.contract`) and checks that they do. The CLI, the
server, evaluation, export, ensembles and distillation teachers all run models through here.
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from digitrec.artifact import read_metadata, resolve_model_path
from digitrec.backends import Backend, KerasBackend, check_trusted, open_backend
from digitrec.contract import NUM_CLASSES, check_images
from digitrec.errors import ImageError, ModelError
from digitrec.preprocess import Digit, ImageInput, find_images, read
from digitrec.temperature import apply_temperature

# Below this top (calibrated) probability an answer is flagged uncertain. Chosen by a rule, on the
# validation split and synthetic symbols only: the highest threshold in steps of 0.01 that flags
# at most 1% of validation digits (0.90% for the bundled default, which leaves 74% of letters
# and 70% of scribbles flagged; `python benchmarks/uncertainty.py --sweep`).
UNCERTAIN_BELOW = 0.98
WIDE_WHOLE = 0.9  # ink as wide as two digits (`Digit.wide`) is read whole only if 1/0.9 × likelier than split
BATCH_SIZE = 512  # images per model call: large enough to amortise a call, small enough for any backend
FILES_PER_BATCH = 64  # image files decoded before their digits go to the model together


@dataclass(frozen=True)
class Prediction:
    """The answer for one image (or, inside `digits`, for one character of it)."""

    digit: int
    confidence: float
    probabilities: list[float]
    uncertain: bool
    reason: str | None = None  # why uncertain: "no ink", "low confidence", "looks like N digits"
    box: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) of the ink
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # what the model saw
    number: str | None = None  # multi-digit reading: the digits left to right
    digits: list["Prediction"] | None = None

    @property
    def number_confidence(self) -> float | None:
        """A number's confidence: the product of its digits' (the chance that all of them are
        right, were they independent); 0 where no digit was found, None for a one-digit reading."""
        if self.digits is None:
            return None
        return math.prod(d.confidence for d in self.digits) if self.digits else 0.0

    def to_dict(self, top_k: int | None = None, whole: bool = True) -> dict:
        """JSON-ready: the fields above but the image; `top_k` adds the K likeliest digits.

        A number's reading leads with `number` and its confidence, `uncertain` where any digit
        is; `whole=False` leaves out the whole image read as one digit, a guess that means
        nothing for a number (the HTTP API keeps it, as its schema asks for `digit`)."""
        if self.digits is None:
            return self._digit_dict(self.confidence, top_k)
        out = self._digit_dict(self.number_confidence or 0.0, top_k if whole else None)
        product = {"confidence": out.pop("confidence"), "confidence_of": "product of the digits' confidences"}
        out = {"number": self.number, **product, **out}
        if not whole:
            del out["digit"], out["probabilities"]
        return out | {"digits": [d.to_dict(top_k) for d in self.digits]}

    def _digit_dict(self, confidence: float, top_k: int | None) -> dict:
        out: dict = {
            "digit": self.digit,
            "confidence": round(confidence, 6),
            "probabilities": [round(p, 6) for p in self.probabilities],
            "uncertain": self.uncertain,
            "reason": self.reason,
            "box": list(self.box) if self.box else None,
        }
        if top_k:
            order = np.argsort(self.probabilities)[::-1][:top_k]
            out["top_k"] = [{"digit": int(d), "probability": round(self.probabilities[d], 6)} for d in order]
        return out

    def describe(self, top_k: int | None = None) -> str:
        """For a person: `7 (0.998)`, the K likeliest, why uncertain; a number leads with itself
        and its confidence, then one line per digit: `2026 (0.962, ...)`, `  2 (0.990)  at (...)`."""
        if self.digits is None:
            return self._line(f"{self.digit} ({self.confidence:.3f})", top_k)
        confidence = f"{self.number_confidence:.3f}"
        if len(self.digits) > 1:
            confidence += f", the product of its {len(self.digits)} digits' confidences"
        lines = [d._line(f"  {d.digit} ({d.confidence:.3f})  at {d.box}", top_k) for d in self.digits]
        return "\n".join([self._line(f"{self.number or '-'} ({confidence})", None), *lines])

    def _line(self, text: str, top_k: int | None) -> str:
        if top_k:
            top = self._digit_dict(self.confidence, top_k)["top_k"]
            text += "  top " + ", ".join(f"{t['digit']} {t['probability']:.3f}" for t in top)
        several = (self.reason or "").startswith("looks like")  # the CLI's flag: the one caller
        return text + (f"  uncertain: {self.reason}{'; use --multi' * several}" if self.uncertain else "")


@dataclass(frozen=True)
class Prepared:
    """An image after preprocessing: the whole as one digit, and its characters if asked."""

    whole: Digit
    characters: list[Digit] | None = None


class Recognizer:
    """A trained model and the preprocessing that makes any image look like its training data.

    The model runs on Keras for `.keras` files and model directories, on TensorFlow for a
    SavedModel, and on the LiteRT runtime for `.tflite` files, which needs no TensorFlow at all:
    each backend is imported only when a model of its kind is loaded.
    """

    def __init__(self, backend: Backend, metadata: dict | None = None, path: Path | None = None):
        self.backend, self.metadata, self.path = backend, metadata or {}, path
        # Fitted on the validation split when the model was saved (`digitrec.temperature`).
        self.temperature = float(self.metadata.get("temperature", 1.0))

    @classmethod
    def load(cls, name_or_path: str | Path = "default", *, trust_model: bool = False) -> "Recognizer":
        """A bundled model (`default`, `ensemble`), a model directory, a `.keras` or `.tflite`
        file, or a SavedModel directory; a model directory's weights are checked by SHA-256.
        A SavedModel, or a `.tflite` no sidecar vouches for, needs `trust_model=True`."""
        path = resolve_model_path(name_or_path)
        metadata = read_metadata(path)
        check_trusted(path, metadata, trust_model)
        return cls(open_backend(path, metadata), metadata, path)

    @classmethod
    def from_keras(cls, model: Any, metadata: dict | None = None) -> "Recognizer":
        """A Keras model in memory (one being trained, say) behind the same interface."""
        return cls(KerasBackend(model, compiled=False), metadata)

    @property
    def keras_model(self) -> Any:
        """The Keras model itself, for what needs its layers (joining, exporting)."""
        if not isinstance(self.backend, KerasBackend):
            raise ModelError(f"{self.path} is not a Keras model; pass a model directory or a .keras file")
        return self.backend.model

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "a model in memory"

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """`(n, 10)` probabilities for `(n, 28, 28)` floats in [0, 1], white on black; else `InputError`."""
        images = check_images(images)
        if not len(images):
            return np.zeros((0, NUM_CLASSES), np.float32)
        batches = [self.backend.run(images[i : i + BATCH_SIZE]) for i in range(0, len(images), BATCH_SIZE)]
        return apply_temperature(np.concatenate(batches), self.temperature)

    def prepare(self, image: ImageInput, multi: bool = False) -> Prepared:
        """Preprocess one image; raises `ImageError` for one that cannot be read."""
        return Prepared(*read(image, multi))

    def predict(self, images: ImageInput | Sequence[ImageInput], multi: bool = False) -> list[Prediction]:
        """One `Prediction` per image; with `multi`, also the number it holds, digit by digit."""
        return self.predict_prepared([self.prepare(item, multi) for item in _as_list(images)])

    def predict_files(
        self, paths: Sequence[str | Path], multi: bool = False
    ) -> Iterator[tuple[Path, "Prediction | ImageError"]]:
        """Each image file given or found under a directory given (recursively, by suffix), with
        its answer or the `ImageError` that says why it could not be read; the others go on."""
        files = find_images(list(paths))
        for start in range(0, len(files), FILES_PER_BATCH):
            readable: list[Path] = []
            prepared: list[Prepared] = []
            for path in files[start : start + FILES_PER_BATCH]:
                try:
                    prepared.append(self.prepare(path, multi))
                    readable.append(path)
                except ImageError as exc:
                    yield path, exc
            yield from zip(readable, self.predict_prepared(prepared), strict=True)

    def predict_prepared(self, prepared: Sequence[Prepared]) -> list[Prediction]:
        """Predictions for images already through `prepare`, all their digits in one batch."""
        digits = digits_of(prepared)
        if not digits:
            return []
        return self.answer(prepared, self.predict_proba(np.stack([d.image for d in digits])))

    @staticmethod
    def answer(prepared: Sequence[Prepared], probs: np.ndarray) -> list[Prediction]:
        """Predictions from the model's probabilities for `digits_of(prepared)`, in that order."""
        answers = iter([_answer(d, p) for d, p in zip(digits_of(prepared), probs, strict=True)])
        wholes = [next(answers) for _ in prepared]
        read = [[next(answers) for _ in item.characters or []] for item in prepared]
        results = []
        for whole, item, characters in zip(wholes, prepared, read, strict=True):
            if item.characters is None:
                results.append(whole)
                continue
            options = []  # each character's answer, likeliest split, and answer joined with the next
            for character, answer in zip(item.characters, characters, strict=True):
                pairs = [(next(answers), next(answers)) for _ in character.splits]
                best = max(pairs, key=lambda pair: pair[0].confidence * pair[1].confidence, default=None)
                options.append((answer, best, next(answers) if character.joined else None, character.wide))
            chosen = _choose(options)
            results.append(_with_number(whole, "".join(str(c.digit) for c in chosen), chosen))
        return results


def digits_of(prepared: Sequence[Prepared]) -> list[Digit]:
    """Every image the model must see: each whole image, then each one's characters, then for
    each character the left and right digit of each way to split it and its ink joined with the
    next character's, in that order."""
    characters = [c for p in prepared for c in p.characters or []]
    parts: list[Digit] = []
    for character in characters:
        parts += [d for pair in character.splits for d in pair] + (
            [character.joined] if character.joined else []
        )
    return [p.whole for p in prepared] + characters + parts


Option = tuple["Prediction", "tuple[Prediction, Prediction] | None", "Prediction | None", bool]


def _choose(options: list[Option]) -> list["Prediction"]:
    """The digits of a number, reading each character whole unless a reading of its ink split
    in two is likelier, or it is in doubt and its ink joined with the next character's is.

    A split is weighed even against a confident whole: splits are offered only for ink as wide
    as the row is tall, and squeezed into one frame two touching digits often read confidently
    as one (a 4 for 41); ink as wide as two digits (`Digit.wide`) is read whole only if that is
    clearly likelier."""
    chosen: list[Prediction] = []
    i = 0
    while i < len(options):
        answer, split, joined, wide = options[i]
        if joined is not None and i + 1 < len(options):
            after = options[i + 1][0]
            doubt = min(answer.confidence, after.confidence) < UNCERTAIN_BELOW
            if (
                doubt
                and joined.confidence >= UNCERTAIN_BELOW
                and joined.confidence > answer.confidence * after.confidence
            ):
                chosen.append(joined)  # two pieces of one broken digit
                i += 2
                continue
        whole = answer.confidence * (WIDE_WHOLE if wide else 1.0)
        if split and split[0].confidence * split[1].confidence > whole:
            chosen += split  # two digits touching
        else:
            chosen.append(answer)
        i += 1
    return chosen


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image as a list of one; a sequence, or an array of images `(n, h, w)`, as a list."""
    if isinstance(images, str | Path | bytes | Image.Image):
        return [images]
    if isinstance(images, np.ndarray) and images.ndim == 2:
        return [images]
    return list(images)


def _answer(digit: Digit, probs: np.ndarray) -> Prediction:
    best = int(np.argmax(probs))
    confidence = float(probs[best])
    several = f"looks like {digit.ink_groups} digits" if digit.ink_groups > 1 else None
    low = "low confidence" if confidence < UNCERTAIN_BELOW else None
    reason = "no ink" if digit.empty else several or low
    return Prediction(
        best, confidence, [float(p) for p in probs], reason is not None, reason, digit.box, digit.image
    )


def _with_number(whole: Prediction, number: str, characters: list[Prediction]) -> Prediction:
    if not characters:
        return Prediction(
            whole.digit, whole.confidence, whole.probabilities, True, "no ink", whole.box, whole.image, "", []
        )
    reason = (
        whole.reason if len(characters) == 1 else next((c.reason for c in characters if c.uncertain), None)
    )
    return Prediction(
        whole.digit,
        whole.confidence,
        whole.probabilities,
        reason is not None,
        reason,
        whole.box,
        whole.image,
        number,
        characters,
    )
