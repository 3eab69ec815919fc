#!/usr/bin/env bash
# Portability: train `fast` for one epoch on the JAX backend in a scratch venv without
# TensorFlow, check TensorFlow was never imported, then evaluate the saved model on TensorFlow.
# Usage: bash benchmarks/jax_portability.sh   (from the repository root, after `make venv`)
set -euo pipefail
venv=${JAX_VENV:-/tmp/digitrec-jax-venv}
test -x "$venv/bin/python" || python3 -m venv "$venv"
"$venv/bin/pip" install -q jax 'keras>=3.10,<4' numpy pillow scipy tqdm matplotlib
"$venv/bin/pip" install -q --no-deps -e .
out=$(mktemp -d)/fast-jax
KERAS_BACKEND=jax "$venv/bin/python" - "$out" <<'PY'
import sys
import keras
from digitrec.recipes import recipe
from digitrec.train import train
assert keras.backend.backend() == "jax"
result = train(recipe("fast", epochs=1, seed=0), sys.argv[1], data_dir="data")
assert "tensorflow" not in sys.modules, "the training path imported TensorFlow"
print(f"jax: test accuracy {result.accuracy:.4f} after 1 epoch, {result.train_seconds:.1f} s; no TensorFlow imported")
PY
.venv/bin/digitrec evaluate --model "$out" --json | python3 -c 'import json,sys; print("tensorflow: test accuracy", json.loads(sys.stdin.read())["accuracy"])'
# Data-parallel on JAX (keras.distribution.DataParallel), two host devices standing in for GPUs.
XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax "$venv/bin/python" -m digitrec \
  train --model mlp --epochs 1 --train-limit 4000 --strategy mirrored --out "$(mktemp -d)/dp" --json | tail -n 1
