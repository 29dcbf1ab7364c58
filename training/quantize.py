"""Keras model to TFLite: a float reference file and the full-int8 deployment file."""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf


def to_float_tflite(model: keras.Model) -> bytes:
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def to_int8_tflite(model: keras.Model, representative: np.ndarray) -> bytes:
    """Full-integer post-training quantization: int8 weights, activations, input and output.

    `representative` holds model inputs drawn from the training split; they set every
    activation range, so they must cover normal operating conditions.
    """

    def examples() -> Iterator[list[np.ndarray]]:
        for row in representative:
            yield [row[np.newaxis].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = examples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()
