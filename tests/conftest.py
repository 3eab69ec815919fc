import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO / "data" / "mnist"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A softmax model trained for one epoch on 2,000 real MNIST images."""
    from digitrec.train import recipe, train

    out = tmp_path_factory.mktemp("models") / "tiny"
    train(recipe("softmax", epochs=1, train_limit=2000), out, log=lambda line: None)
    return out
