"""`rtim forget CUSTOMER_ID`: request erasure of a customer through the public contract."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `rtim forget`."""
    app.command("forget")(forget)


def forget(
    customer_id: Annotated[str, typer.Argument(help="The customer to erase.")],
) -> None:
    """Erase a customer: sends a ProfileEvent `erasure` on rtim.events.profile.

    The worker then deletes the profile's contents, pending attributions and timers, keeps only
    the erasure time and the markers that recognise redelivered events, and answers later
    requests for this id with no action. See docs/reliability.md for what cannot be erased.
    """
    from confluent_kafka import Producer

    from rtim.errors import BrokerError, ValidationError
    from rtim.kafka.config import producer_config
    from rtim.logs import get_logger
    from rtim.serde.codec import Codec
    from rtim.settings import get_settings

    if not customer_id.strip():
        raise ValidationError("customer id must not be empty")
    settings = get_settings()
    topic = settings.topic("rtim.events.profile")
    record = {
        "event_id": f"erasure-{uuid.uuid4()}",
        "customer_id": customer_id,
        "ts": int(time.time() * 1000),
        "type": "erasure",
        "channel": None,
        "granted": None,
        "attributes": None,
        "linked_id": None,
    }
    value = Codec.from_settings(settings).encode("ProfileEvent", record, topic=topic)
    errors: list[str] = []
    producer = Producer(producer_config(settings))
    producer.produce(
        topic,
        value,
        customer_id.encode(),
        on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
    )
    if producer.flush(30) or errors:
        raise BrokerError(f"could not send the erasure request: {errors[:1] or 'timed out'}")
    get_logger("forget").info("erasure requested", customer_id=customer_id)
    print(f"erasure of {customer_id} requested ({record['event_id']})")
