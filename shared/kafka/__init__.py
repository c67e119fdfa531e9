"""Kafka helpers shared by the AgentOS services (``devbroker``: the embedded development broker)."""
