"""Keras architectures built only from ops that TFLite quantizes fully to int8 (Conv1D, Dense,
pooling, transposed convolution, unrolled LSTM cells, ReLU, softmax, add/average), sized for a
Raspberry Pi CPU."""

from __future__ import annotations

import keras
from keras import layers

from edge_agent.errors import ConfigError
from training.config import ModelConfig


def _noisy(inputs: keras.KerasTensor, config: ModelConfig) -> keras.KerasTensor:
    return layers.GaussianNoise(config.input_noise)(inputs) if config.input_noise else inputs


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
    x = _noisy(inputs, config)
    for units in config.dense_units:
        x = layers.Dense(units, activation=config.activation)(x)
    for units in reversed(config.dense_units[:-1]):
        x = layers.Dense(units, activation=config.activation)(x)
    outputs = layers.Dense(input_shape[0])(x)
    return keras.Model(inputs, outputs, name="dense_autoencoder")


def _sequence_shape(input_shape: tuple[int, ...], architecture: str) -> tuple[int, int]:
    if len(input_shape) != 2:
        raise ConfigError(
            f"model.architecture '{architecture}' needs (time, channels) model inputs, but the "
            f"front end gives shape {input_shape}: drop the flatten (or concat axis='flat') step"
        )
    return input_shape[0], input_shape[1]


def conv1d_autoencoder(input_shape: tuple[int, ...], config: ModelConfig) -> keras.Model:
    """Conv1D + max-pool encoder (one halving per entry of `filters`), mirrored by strided
    Conv1DTranspose layers, and a linear Conv1D back to the input channels.

    Transposed convolutions rather than UpSampling1D: both convert to full int8, but the
    transposed form measured closer to float on a probe model (0.007 vs 0.013 max output error).
    """
    steps, channels = _sequence_shape(input_shape, "conv1d_autoencoder")
    factor = 2 ** len(config.filters)
    if steps % factor:
        raise ConfigError(
            f"conv1d_autoencoder halves the time axis {len(config.filters)} times, so it needs "
            f"a multiple of {factor} time steps; the model input has {steps}"
        )
    inputs = keras.Input(shape=input_shape)
    x = _noisy(inputs, config)
    for filters in config.filters:
        x = layers.Conv1D(
            filters, config.kernel_size, padding="same", activation=config.activation
        )(x)
        x = layers.MaxPooling1D(2)(x)
    for filters in reversed(config.filters):
        x = layers.Conv1DTranspose(
            filters, config.kernel_size, strides=2, padding="same", activation=config.activation
        )(x)
    outputs = layers.Conv1D(channels, config.kernel_size, padding="same")(x)
    return keras.Model(inputs, outputs, name="conv1d_autoencoder")


def lstm_autoencoder(input_shape: tuple[int, ...], config: ModelConfig) -> keras.Model:
    """LSTM encoder down to a vector (`dense_units` are the LSTM widths, the last one the
    bottleneck), repeated over time, an LSTM decoder and a per-step Dense to the channels.

    The LSTMs are unrolled: a rolled LSTM keeps a TensorList whose shape TFLite's int8
    conversion refuses ("element_shape to be static"); unrolled, every step is plain
    FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD ops, all int8. The graph grows with the
    window, so keep windows short (tens of steps).
    """
    steps, channels = _sequence_shape(input_shape, "lstm_autoencoder")
    inputs = keras.Input(shape=input_shape)
    x = _noisy(inputs, config)
    units = config.dense_units
    for i, width in enumerate(units):
        x = layers.LSTM(width, return_sequences=i < len(units) - 1, unroll=True)(x)
    x = layers.RepeatVector(steps)(x)
    for width in reversed(units):
        x = layers.LSTM(width, return_sequences=True, unroll=True)(x)
    outputs = layers.Dense(channels)(x)
    return keras.Model(inputs, outputs, name="lstm_autoencoder")


def regressor_members(model: keras.Model) -> list[keras.Model]:
    """The averaged sub-networks of a `cnn1d_regressor` (one when it is not an ensemble)."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _regressor_member(input_shape: tuple[int, ...], config: ModelConfig, index: int):
    inputs = keras.Input(shape=input_shape)
    x = _noisy(inputs, config)
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
