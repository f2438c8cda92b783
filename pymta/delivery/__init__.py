"""Delivery: deliver one message, retry rules, bounces."""
from pymta.delivery.deliver import DeliveryOutcome, deliver_message

__all__ = ["deliver_message", "DeliveryOutcome"]
