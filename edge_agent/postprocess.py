"""Turning a model's float output into the task's answer; training evaluates with the same code."""

from __future__ import annotations

import numpy as np


def reconstruction_mse(model_input: np.ndarray, model_output: np.ndarray) -> float:
    """Anomaly score of an autoencoder: mean squared error over every input element."""
    diff = np.asarray(model_input, dtype=np.float64).reshape(-1) - np.asarray(
        model_output, dtype=np.float64
    ).reshape(-1)
    return float(np.mean(diff * diff))
