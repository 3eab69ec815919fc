"""The tutorial's own program, run as intended: TF1 graph, session, feed_dict.

"Handwritten digits recognition using TensorFlow with Python" trains a softmax regression with
plain gradient descent (lr 0.01, batch 100, 10 epochs) and prints test accuracy every 2 epochs.
Its code no longer runs as published (a closed session, Python 2 prints, the removed
`tensorflow.examples.tutorials.mnist.input_data`); this is that program with only those three
things mended, through `tf.compat.v1`, so it can stand as the baseline for `digitrec train
--recipe softmax`. Like `input_data`, it trains on the 55,000 images after the first 5,000.

Usage: python benchmarks/seed_tf1.py [DATA_DIR]   (default: data/mnist)
"""

import gzip
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[labels]


def main() -> None:
    start = time.perf_counter()
    data = sys.argv[1] if len(sys.argv) > 1 else "data/mnist"
    images = read_idx(f"{data}/train-images-idx3-ubyte.gz").reshape(-1, 784) / np.float32(255)
    labels = one_hot(read_idx(f"{data}/train-labels-idx1-ubyte.gz"))
    train_x, train_y = images[5000:], labels[5000:]
    test_x = read_idx(f"{data}/t10k-images-idx3-ubyte.gz").reshape(-1, 784) / np.float32(255)
    test_y = one_hot(read_idx(f"{data}/t10k-labels-idx1-ubyte.gz"))

    tf.compat.v1.disable_eager_execution()
    x = tf.compat.v1.placeholder(tf.float32, [None, 784])
    y_ = tf.compat.v1.placeholder(tf.float32, [None, 10])
    W = tf.Variable(tf.zeros([784, 10]))
    b = tf.Variable(tf.zeros([10]))
    y = tf.nn.softmax(tf.matmul(x, W) + b)
    cross_entropy = tf.reduce_mean(-tf.reduce_sum(y_ * tf.math.log(y), axis=1))
    train_step = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(cross_entropy)
    correct = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

    train_start = time.perf_counter()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        batch = 100
        for epoch in range(10):
            order = np.random.permutation(len(train_x))
            for i in range(0, len(train_x), batch):
                idx = order[i : i + batch]
                sess.run(train_step, feed_dict={x: train_x[idx], y_: train_y[idx]})
            if epoch % 2 == 1:
                acc = sess.run(accuracy, feed_dict={x: test_x, y_: test_y})
                print(f"epoch {epoch + 1}: test accuracy {acc:.4f}")
        final = sess.run(accuracy, feed_dict={x: test_x, y_: test_y})
    end = time.perf_counter()
    print(f"test accuracy {final:.4f}; training {end - train_start:.1f} s, whole {end - start:.1f} s")


if __name__ == "__main__":
    main()
