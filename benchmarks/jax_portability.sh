#!/usr/bin/env bash
# Portability: train `fast` for one epoch, and `cnn` with every augmentation (stroke width, the
# warp with shear and elastic distortion) on 2,000 images, on the JAX backend in a scratch venv
# without TensorFlow; check TensorFlow was never imported; then load both saved models on
# TensorFlow and compare their probabilities for 1,000 test images with JAX's. The augmentation
# and model tests run on JAX too. Usage: bash benchmarks/jax_portability.sh   (after `make venv`)
set -euo pipefail
venv=${JAX_VENV:-/tmp/digitrec-jax-venv}
test -x "$venv/bin/python" || python3 -m venv "$venv"
"$venv/bin/pip" install -q jax 'keras>=3.10,<4' numpy pillow scipy tqdm matplotlib pytest hypothesis
"$venv/bin/pip" install -q --no-deps -e .
KERAS_BACKEND=jax "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_augment.py tests/test_models.py
out=$(mktemp -d)
cat > "$out/probabilities.py" <<'PY'
"""Train (on JAX) or load (on TensorFlow) the two models; save or compare their probabilities."""
import sys

import keras
import numpy as np

from digitrec.data import load_dataset
from digitrec.recipes import recipe
from digitrec.recognizer import Recognizer
from digitrec.training import train

out = sys.argv[1]
images = load_dataset(data_dir="data").test_images[:1000] / np.float32(255)
runs = {
    "fast": recipe("fast", epochs=1, seed=0),
    "cnn": recipe("cnn", epochs=1, seed=0, train_limit=2000, shear=0.2, elastic_alpha=34, curves=False),
}
for name, config in runs.items():
    if keras.backend.backend() == "jax":
        result = train(config, f"{out}/{name}", data_dir="data", log=lambda line: None)
        print(f"jax: {name} test accuracy {result.accuracy:.4f} after 1 epoch, {result.train_seconds:.1f} s")
        np.save(f"{out}/{name}.npy", Recognizer.load(f"{out}/{name}").predict_proba(images))
    else:
        gap = np.abs(Recognizer.load(f"{out}/{name}").predict_proba(images) - np.load(f"{out}/{name}.npy")).max()
        print(f"tensorflow: {name} loaded; largest probability difference from JAX's {gap:.1e}")
        assert gap < 1e-4, name
if keras.backend.backend() == "jax":
    assert "tensorflow" not in sys.modules, "the training path imported TensorFlow"
    print("jax: no TensorFlow imported")
PY
KERAS_BACKEND=jax "$venv/bin/python" "$out/probabilities.py" "$out"
.venv/bin/python "$out/probabilities.py" "$out"
# Data-parallel on JAX (keras.distribution.DataParallel), two host devices standing in for GPUs.
XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax "$venv/bin/python" -m digitrec \
  train --recipe mlp --epochs 1 --train-limit 4000 --strategy mirrored --out "$(mktemp -d)/dp" --json | tail -n 1
