"""Spread the agent's results over several consumer processes with an MQTT v5 shared
subscription: the broker gives each message to one member of the group.

    python examples/shared_consumers.py --host localhost --workers 3

Each worker validates and de-duplicates with edge_agent.mqtt.consumer.ResultTracker. Duplicates can
still reach two different workers (at-least-once delivery), so a downstream store should also
treat (device, model.id, seq) as its key.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os

import paho.mqtt.client as mqtt

from edge_agent.mqtt.consumer import ContractError, ResultTracker

GROUP_TOPIC = "$share/pdm-consumers/{prefix}/+/+/result"


def consumer(host: str, port: int, prefix: str) -> None:
    tracker = ResultTracker()

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            accepted = tracker.accept(message.topic, message.payload)
        except ContractError as exc:
            print(f"[{os.getpid()}] invalid: {exc}")
            return
        if accepted is not None:
            result = accepted.payload
            print(f"[{os.getpid()}] {result.device}/{accepted.model} seq {result.seq}")

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(GROUP_TOPIC.format(prefix=prefix), qos=1)
    client.on_message = on_message
    client.connect(host, port)
    client.loop_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--prefix", default="pdm")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    workers = [
        multiprocessing.Process(target=consumer, args=(args.host, args.port, args.prefix))
        for _ in range(args.workers)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
