#!/usr/bin/env python3
"""Train the int8 example models on scikit-learn's 8x8 digits and convert them to .tflite.

    pip install 'tinyhil[train]'        # TensorFlow: only this script needs it
    python scripts/train_int8_examples.py [--out devices/models]

Writes, next to each other:
  digits_mlp_int8.tflite  64-32-10 MLP, int8 input and output (for an Arduino Uno)
  digits_cnn_int8.tflite  small CNN, float input behind a QUANTIZE op, int8 output
                          (for a Mega 2560 or an ESP32)
  digits_int8_test.npz    the test split: X float32 (n, 64) pixels 0..16, y int64
  digits_mlp_float.npz    the MLP's float weights (W0, b0, W1, b1), before quantisation: the
                          demo catalogue exports the same network with emlearn (float), so
                          the table shows what int8 quantisation costs or gains

The split is the demo catalogue's (harness/models/modelfile.py SPLIT: test_size 0.25,
random_state 0, stratified), so accuracies compare with the other digits variants.
Conversion is TFLite's full-integer post-training quantisation, the training set as
representative data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SPLIT = dict(test_size=0.25, random_state=0)  # as harness/models.py; plus stratify=y


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, stratify=y, **SPLIT)
    return Xtr.astype(np.float32), Xte.astype(np.float32), ytr, yte


def convert(tf, model, representative, int8_input: bool) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None]] for x in representative[:300])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_input:
        conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "devices" / "models")
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args()
    try:
        import tensorflow as tf
    except ImportError as e:
        raise SystemExit(f"this script needs TensorFlow ({e}): pip install 'tinyhil[train]'")
    tf.keras.utils.set_random_seed(0)
    Xtr, Xte, ytr, yte = digits()
    args.out.mkdir(parents=True, exist_ok=True)
    L = tf.keras.layers

    mlp = tf.keras.Sequential([L.Input((64,)), L.Dense(32, activation="relu"), L.Dense(10),
                               L.Softmax()])
    cnn = tf.keras.Sequential([
        L.Input((8, 8, 1)),
        L.Conv2D(8, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),                                        # 4x4x8
        L.DepthwiseConv2D(3, padding="same", activation="relu"),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),                                        # 2x2x16
        L.Flatten(),                                              # SHAPE/STRIDED_SLICE/PACK/RESHAPE
        L.Dense(10), L.Softmax()])
    for name, model, shape, int8_input in (("digits_mlp_int8", mlp, (-1, 64), True),
                                           ("digits_cnn_int8", cnn, (-1, 8, 8, 1), False)):
        model.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(Xtr.reshape(shape), ytr, epochs=args.epochs, batch_size=32, verbose=0)
        acc = model.evaluate(Xte.reshape(shape), yte, verbose=0)[1]
        buf = convert(tf, model, Xtr.reshape(shape), int8_input)
        (args.out / f"{name}.tflite").write_bytes(buf)
        if name == "digits_mlp_int8":
            dense = [layer for layer in model.layers if layer.get_weights()]
            weights = {f"{k}{i}": w for i, layer in enumerate(dense)
                       for k, w in zip("Wb", layer.get_weights())}
            np.savez_compressed(args.out / "digits_mlp_float.npz", **weights)
        print(f"{name}: Keras float test accuracy {acc:.4f}, {len(buf)} bytes of .tflite")
    np.savez_compressed(args.out / "digits_int8_test.npz", X=Xte, y=yte.astype(np.int64))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
