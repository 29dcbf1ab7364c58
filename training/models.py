"""Keras architectures built only from ops that TFLite quantizes fully to int8 (Conv1D, Dense,
pooling, ReLU, softmax, add/average), sized for a Raspberry Pi CPU."""

from __future__ import annotations

import keras
from keras import layers

from training.config import ModelConfig


def _conv_stack(x: keras.KerasTensor, config: ModelConfig, pool: bool) -> keras.KerasTensor:
    for filters in config.filters:
        x = layers.Conv1D(
            filters, config.kernel_size, padding="same", activation=config.activation
        )(x)
        if pool:
            x = layers.MaxPooling1D(2)(x)
    return x


def cnn1d_classifier(
    input_shape: tuple[int, ...], n_classes: int, config: ModelConfig
) -> keras.Model:
    """Conv blocks over the spectral axis, global average pooling, softmax."""
    inputs = keras.Input(shape=input_shape)
    x = _conv_stack(inputs, config, pool=True)
    x = layers.GlobalAveragePooling1D()(x)
    for units in config.dense_units:
        x = layers.Dense(units, activation=config.activation)(x)
        if config.dropout:
            x = layers.Dropout(config.dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn1d_classifier")


def dense_autoencoder(input_shape: tuple[int, ...], config: ModelConfig) -> keras.Model:
    """Symmetric dense autoencoder; `dense_units` lists encoder widths down to the bottleneck."""
    inputs = keras.Input(shape=input_shape)
    x = layers.GaussianNoise(config.input_noise)(inputs) if config.input_noise else inputs
    for units in config.dense_units:
        x = layers.Dense(units, activation=config.activation)(x)
    for units in reversed(config.dense_units[:-1]):
        x = layers.Dense(units, activation=config.activation)(x)
    outputs = layers.Dense(input_shape[0])(x)
    return keras.Model(inputs, outputs, name="dense_autoencoder")


def regressor_members(model: keras.Model) -> list[keras.Model]:
    """The averaged sub-networks of a `cnn1d_regressor` (one when it is not an ensemble)."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _regressor_member(input_shape: tuple[int, ...], config: ModelConfig, index: int):
    inputs = keras.Input(shape=input_shape)
    x = layers.GaussianNoise(config.input_noise)(inputs) if config.input_noise else inputs
    x = _conv_stack(x, config, pool=False)
    x = layers.Flatten()(x)
    if config.dropout:
        x = layers.Dropout(config.dropout)(x)
    for units in config.dense_units:
        x = layers.Dense(units, activation=config.activation)(x)
    x = layers.Dense(1)(x)
    if config.output_scale != 1.0:
        x = layers.Rescaling(config.output_scale)(x)
    return keras.Model(inputs, x, name=f"member_{index + 1}")


def cnn1d_regressor(input_shape: tuple[int, ...], config: ModelConfig) -> keras.Model:
    """Temporal conv stack, flatten, dropout and a dense head (after Li et al. 2018, DCNN).

    Training-time input noise regularises against memorising single engines; `ensemble`
    sub-networks (each its own nested model, see `regressor_members`) are averaged inside one
    graph, so the device still runs one model. `output_scale` multiplies the head's output:
    Adam moves each weight by about the learning rate per step, so a head that must reach
    outputs of 100+ from unit-scale weights would need thousands of steps to get there.
    """
    inputs = keras.Input(shape=input_shape)
    heads = [_regressor_member(input_shape, config, i)(inputs) for i in range(config.ensemble)]
    outputs = heads[0] if len(heads) == 1 else layers.Average()(heads)
    return keras.Model(inputs, outputs, name="cnn1d_regressor")
