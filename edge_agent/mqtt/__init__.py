"""Everything MQTT: client, topics, payload contract, commands, spool, publisher, Home Assistant
discovery and consumer helpers, so the top level of `edge_agent` shows the pipeline stages."""
