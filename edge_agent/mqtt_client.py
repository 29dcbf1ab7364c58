"""Building a paho-mqtt 2.x client from `[mqtt]`: protocol, TLS (verification on), credentials,
and paho's own reconnect backoff. No second reconnect loop exists anywhere in the agent."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt

from edge_agent.config.mqtt import MqttConfig
from edge_agent.errors import ConfigError


def make_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    protocol = mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=config.client_id or client_id,
        protocol=protocol,
        clean_session=None if protocol == mqtt.MQTTv5 else True,
    )
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
    if config.username is not None and config.password is not None:
        try:
            client.username_pw_set(config.username, config.password.reveal())
        except ValueError as exc:
            raise ConfigError(f"mqtt.password: {exc}") from None
    if config.tls is not None:
        tls = config.tls
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        context.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        context.check_hostname = tls.verify_hostname
        if tls.cert_file is not None and tls.key_file is not None:
            try:
                context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"mqtt.tls: cannot load client certificate: {exc}") from None
        client.tls_set_context(context)
    return client
