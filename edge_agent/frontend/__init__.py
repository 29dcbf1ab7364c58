"""Signal front end shared by training and the device: windowing and feature steps (numpy only)."""

from edge_agent.frontend.steps import FeaturePipeline, Step
from edge_agent.frontend.windowing import last_window, sliding_windows, window_starts

__all__ = ["FeaturePipeline", "Step", "last_window", "sliding_windows", "window_starts"]
