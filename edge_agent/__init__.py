"""Edge inference runtime for predictive maintenance (device side, no TensorFlow)."""

__version__ = "0.1.0"
