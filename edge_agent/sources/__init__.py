"""Sample sources: simulator, file replay, MQTT subscription, and plugins (entry points)."""
