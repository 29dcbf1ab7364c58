"""Sample blocks and the streaming window buffer."""
