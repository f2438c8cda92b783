"""Delivery: deliver one message, retry rules, bounces.

``deliver_message`` and ``DeliveryOutcome`` are loaded lazily so that importing
``pymta.delivery.address`` (needed by nearly everything) stays cheap and cycle-free.
"""
from typing import Any

__all__ = ["deliver_message", "DeliveryOutcome"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pymta.delivery import deliver
        return getattr(deliver, name)
    raise AttributeError(name)
