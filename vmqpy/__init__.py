"""vmqpy: a distributed MQTT broker on gevent, operated like VerneMQ."""

__version__ = "0.1.0"
