"""A profile is one writer's handwriting: the readings they corrected, and the model adapted to them.

    from digitrec.profiles import adapt_profile
    adapt_profile("ada")                                # fine-tune on ada's corrections
    Recognizer.load("profile:ada").predict(["ada-7.png"])

Corrections are kept by `digitrec.corrections`; `digitrec.adaptation` fine-tunes. The adapted
model goes where `profile:NAME` finds it (`digitrec.artifact.profile_model_dir`), with an int8
LiteRT copy beside it that the server runs without loading TensorFlow.
"""

import contextlib
import fcntl
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from digitrec.adaptation import MIN_EXAMPLES, AdaptConfig, AdaptResult, adapt
from digitrec.artifact import profile_model_dir
from digitrec.corrections import CorrectionStore, read_examples
from digitrec.errors import ConfigError, ModelError
from digitrec.exporter import export
from digitrec.recognizer import Recognizer

log = logging.getLogger("digitrec.serve")
SERVING_FILE = "model-int8.tflite"


def adapt_profile(
    profile: str,
    *,
    base: str | Path = "default",
    examples_dir: Path | None = None,
    out: Path | None = None,
    store: CorrectionStore | None = None,
    config: AdaptConfig | None = None,
    log: Callable[[str], None] = print,
) -> AdaptResult:
    """Adapt `base` to `profile`'s corrections, and the examples in `examples_dir` if given
    (folders `0`–`9` of images, or a `labels.csv` of `file,label`); the model goes to `out`,
    by default where `profile:NAME` finds it."""
    images, labels = (store or CorrectionStore()).examples(profile)
    if examples_dir is not None:
        more_images, more_labels = read_examples(examples_dir)
        images = np.concatenate([images, more_images])  # both uint8, as the model sees them
        labels = np.concatenate([labels, more_labels])
    out_dir = out or profile_model_dir(profile)
    with _only_adaptation_of(profile):
        result = adapt(
            base, images, labels, out_dir, profile=profile, config=config or AdaptConfig(), log=log
        )
        export(out_dir, "tflite-int8", out_dir / SERVING_FILE, force=True)
    return result


@contextlib.contextmanager
def _only_adaptation_of(profile: str) -> Iterator[None]:
    """Hold the profile's lock while adapting: two at once (two server workers, a server and a
    command line) would write one folder twice over."""
    lock_path = profile_model_dir(profile).with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"profile {profile!r} is being adapted already; try again when it is done"
            ) from None
        yield  # the lock goes with the file's closing, however the process ends


def serving_model(profile: str) -> Path | None:
    """The int8 model adapted to `profile` that a server runs, or None where there is none yet.

    Its sidecar, written once the export is measured, says it is whole: the model file alone
    may be an export still under way."""
    path = profile_model_dir(profile) / SERVING_FILE
    return path if path.with_name(SERVING_FILE + ".json").is_file() else None


class ProfileModels:
    """The adapted models a server runs, one per profile, loaded once and again when replaced."""

    def __init__(self) -> None:
        self._loaded: dict[str, tuple[float, Recognizer]] = {}

    def get(self, profile: str) -> Recognizer | None:
        """`profile`'s adapted model, or None where it has none yet."""
        path = serving_model(profile)
        if path is None:
            return None
        stamp = path.with_name(SERVING_FILE + ".json").stat().st_mtime
        if profile not in self._loaded or self._loaded[profile][0] != stamp:
            try:
                self._loaded[profile] = (stamp, Recognizer.load(path))  # int8 LiteRT: milliseconds
            except ModelError as exc:  # replaced while being read: the one before serves meanwhile
                log.warning("profile %r: %s", profile, exc)
                return self._loaded[profile][1] if profile in self._loaded else None
        return self._loaded[profile][1]


class BackgroundAdaptation:
    """Adapts a profile in a child process at low priority each time `every` more corrections
    have come in: training takes both cores for a minute, and a server must keep answering."""

    def __init__(self, base: str | Path, every: int):
        self.base, self.every = str(base), every
        self._running: dict[str, subprocess.Popen] = {}

    def corrected(self, profile: str, corrections: int) -> bool:
        """Note that `profile` now has `corrections`; whether an adaptation of it is under way."""
        if self.running(profile):
            return True
        if not self.every or corrections < MIN_EXAMPLES or corrections % self.every:
            return False
        command = [sys.executable, "-m", "digitrec", "adapt", "--profile", profile, "--model", self.base]
        nice = shutil.which("nice")
        self._running[profile] = subprocess.Popen(
            [nice, "-n", "19", *command] if nice else command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the server does not reach it
        )
        return True

    def running(self, profile: str) -> bool:
        process = self._running.get(profile)
        if process is None or process.poll() is None:
            return process is not None
        del self._running[profile]
        if process.returncode:
            log.warning("adapting profile %r failed (exit %s)", profile, process.returncode)
        return False

    def close(self) -> None:
        """Stop adaptations under way; a stopped one leaves the previous model in place."""
        for process in self._running.values():
            process.terminate()
        for process in self._running.values():
            process.wait()
        self._running.clear()
