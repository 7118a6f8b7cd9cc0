"""The bench workload: a deterministic, realistic mix of valid input records.

Every customer first gets an `attributes` and one or two `consent` profile events (so that
conditions, consent rules and outbound triggers have something to read), then the stream
follows the mix of the issue: about 80 % clickstream (in sessions, with carts and checkouts),
10 % transactions (purchases, salary payments, refunds, credit checks), 2 % complaints, 8 %
decision requests, plus outcomes for earlier requests. Event times run from `span_ms` before
`now_ms` up to `now_ms`, in order, so the worker's wall-clock timers (cart abandonment after
30 minutes, ...) fire during the run as they would when catching up on a backlog.

Records are plain dicts that fit the Avro schemas; `produce_items` encodes them with the
project's `Codec` and produces them keyed by customer id, with the event time as the Kafka
timestamp. The same seed gives the same records.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rtim.errors import BrokerError, ConfigError
from rtim.settings import Settings

__all__ = [
    "MIX",
    "TOPIC_BY_KIND",
    "Item",
    "ProduceStats",
    "WorkloadSpec",
    "generate",
    "generate_split",
    "outcome_record",
    "produce_items",
    "request_record",
]

# Share of each kind in the stream after the profile preamble (outcomes come on top).
MIX: dict[str, float] = {"click": 0.80, "txn": 0.10, "complaint": 0.02, "request": 0.08}
OUTCOME_SHARE = 0.02

TOPIC_BY_KIND: dict[str, tuple[str, str]] = {
    "click": ("rtim.events.clickstream", "ClickstreamEvent"),
    "txn": ("rtim.events.transactions", "TransactionEvent"),
    "complaint": ("rtim.events.complaints", "ComplaintEvent"),
    "profile": ("rtim.events.profile", "ProfileEvent"),
    "request": ("rtim.requests", "DecisionRequest"),
    "outcome": ("rtim.outcomes", "Outcome"),
}

_CATEGORIES = (
    "electronics", "fashion", "home", "books", "groceries", "travel", "auto", "credit_card",
    "mortgage", "sports",
)  # fmt: skip
_CATEGORY_WEIGHTS = (20, 18, 12, 8, 10, 8, 5, 6, 3, 10)
_PAGES = ("/", "/offers", "/account", "/cards", "/loans", "/shop", "/shop/cart", "/help")
_CLICK_TYPES = (
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_start",
    "purchase_complete", "login", "logout",
)  # fmt: skip
_CLICK_WEIGHTS = (42, 26, 10, 8, 2, 5, 3, 3, 1)
_SEGMENTS = ("basic", "silver", "gold", "platinum")
_SEGMENT_WEIGHTS = (55, 25, 15, 5)
_OUTCOME_TYPES = ("impression", "click", "accept", "convert", "dismiss", "unsubscribe")
_OUTCOME_WEIGHTS = (40, 30, 8, 4, 16, 2)
_ACTIVE_SESSIONS = 256


@dataclass(frozen=True, slots=True)
class Item:
    """One input record: logical topic, Avro schema, key (customer id), event time, record."""

    topic: str
    schema: str
    key: str
    ts: int
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """What to generate: `events` records in total (preamble included) for `customers`."""

    events: int
    customers: int
    seed: int = 7
    now_ms: int = 0  # 0: the wall clock when generation starts
    span_ms: int = 2 * 3600 * 1000
    offers: Sequence[tuple[str, tuple[str, ...]]] = ()  # (offer id, channels) for outcomes
    id_prefix: str = "b"


@dataclass
class _Session:
    customer: int
    session_id: str
    left: int
    cart: dict[str, float] = field(default_factory=dict)


def generate(spec: WorkloadSpec) -> Iterator[Item]:
    """The records of `spec`, in event-time order (deterministic for a given seed)."""
    preamble, mix = generate_split(spec)
    yield from preamble
    yield from mix


def generate_split(spec: WorkloadSpec) -> tuple[list[Item], Iterator[Item]]:
    """(the profile preamble, the mix that follows it) of `spec`."""
    if spec.customers < 1:
        raise ConfigError("the bench workload needs at least 1 customer")
    rng = random.Random(spec.seed)
    now = spec.now_ms or int(time.time() * 1000)
    start = now - spec.span_ms
    prefix = spec.id_prefix
    cids = [f"c{i:07d}" for i in range(spec.customers)]

    # --- preamble: attributes and consent, one customer after the other ------------------------
    preamble: list[Item] = []
    for i, cid in enumerate(cids):
        ts = start + i % 1000
        attributes = {
            "age": str(rng.randint(18, 80)),
            "segment": rng.choices(_SEGMENTS, _SEGMENT_WEIGHTS)[0],
            "has_children": "true" if rng.random() < 0.3 else "false",
            "homeowner": "true" if rng.random() < 0.4 else "false",
            "city": rng.choice(("Amsterdam", "Utrecht", "Rotterdam", "Eindhoven", "Leiden")),
        }
        preamble.append(_profile(f"{prefix}p{i}a", cid, ts, "attributes", attributes=attributes))
        preamble.append(
            _profile(f"{prefix}p{i}e", cid, ts, "consent", channel="email",
                     granted=rng.random() < 0.9)
        )  # fmt: skip
        if rng.random() < 0.4:
            preamble.append(_profile(f"{prefix}p{i}p", cid, ts, "consent", channel="push",
                                     granted=True))  # fmt: skip
        if rng.random() < 0.05:
            preamble.append(_profile(f"{prefix}p{i}m", cid, ts, "consent", channel="marketing",
                                     granted=False))  # fmt: skip
    if len(preamble) > spec.events:
        raise ConfigError(
            f"{spec.events} events are too few for {spec.customers} customers: the profile "
            f"preamble alone is {len(preamble)} events (use more --events or fewer --customers)"
        )
    return preamble, _mix(spec, rng, cids, spec.events - len(preamble), start, now)


def _mix(  # noqa: PLR0917 - one private call site
    spec: WorkloadSpec, rng: random.Random, cids: list[str], remaining: int, start: int, now: int
) -> Iterator[Item]:
    prefix = spec.id_prefix
    kinds = (*MIX, "outcome")
    total = sum(MIX.values()) + OUTCOME_SHARE
    weights = [*(MIX[k] / total for k in MIX), OUTCOME_SHARE / total]
    sessions: list[_Session] = []
    session_seq = 0
    open_complaints: dict[int, list[str]] = {}
    recent_requests: list[tuple[int, str, str]] = []  # (customer, request id, channel)
    offers = list(spec.offers) or [("help_center_tip", ("web",))]
    mix_start = start + 1000
    step = max(1.0, (now - 1000 - mix_start) / max(1, remaining))

    def pick_customer() -> int:
        # a skewed population: a fifth of the customers make most of the traffic
        return int(spec.customers * rng.random() ** 2.2)

    for n in range(remaining):
        ts = int(mix_start + n * step)
        kind = rng.choices(kinds, weights)[0]
        if kind == "outcome" and not recent_requests:
            kind = "click"
        eid = f"{prefix}{n}"
        if kind == "click":
            if len(sessions) < _ACTIVE_SESSIONS or rng.random() < 0.02:
                session_seq += 1
                sessions.append(_Session(pick_customer(), f"{prefix}s{session_seq}",
                                         rng.randint(3, 25)))  # fmt: skip
            s = sessions[rng.randrange(len(sessions))]
            yield _click(rng, eid, cids[s.customer], ts, s)
            s.left -= 1
            if s.left <= 0:
                sessions.remove(s)
        elif kind == "txn":
            yield _txn(rng, eid, cids[pick_customer()], ts)
        elif kind == "complaint":
            c = pick_customer()
            opened = open_complaints.setdefault(c, [])
            if opened and rng.random() < 0.4:
                cpid = opened.pop(0)
                yield _complaint(rng, eid, cids[c], ts, cpid, "resolved")
            else:
                cpid = f"{prefix}k{n}"
                opened.append(cpid)
                yield _complaint(rng, eid, cids[c], ts, cpid, "opened")
        elif kind == "request":
            if sessions and rng.random() < 0.8:
                c, channel = sessions[rng.randrange(len(sessions))].customer, "web"
            else:
                c, channel = pick_customer(), "call_center"
            rid = f"{prefix}r{n}"
            recent_requests.append((c, rid, channel))
            del recent_requests[:-1000]
            yield _item("request", request_record(rid, cids[c], ts, channel, rng))
        else:  # outcome for an earlier request of the same customer
            c, rid, channel = recent_requests[rng.randrange(len(recent_requests))]
            candidates = [o for o, chans in offers if channel in chans] or [offers[0][0]]
            yield _item(
                "outcome",
                outcome_record(eid, cids[c], ts, channel=channel,
                               offer_id=rng.choice(candidates),
                               kind=rng.choices(_OUTCOME_TYPES, _OUTCOME_WEIGHTS)[0],
                               decision_id=None),
            )  # fmt: skip


def request_record(
    request_id: str, customer_id: str, ts: int, channel: str, rng: random.Random | None = None
) -> dict[str, Any]:
    """A DecisionRequest record (web placements vary; the call centre asks from its desktop)."""
    if channel == "web":
        page = rng.choice(_PAGES) if rng else "/"
        placement, context = ("home" if page == "/" else "banner"), {"page": page}
    else:
        placement, context = "agent_desktop", {"reason": "inbound_call"}
    return {
        "request_id": request_id,
        "customer_id": customer_id,
        "ts": ts,
        "channel": channel,
        "placement": placement,
        "context": context,
        "max_actions": 1,
        "event_id": None,
    }


def outcome_record(
    event_id: str,
    customer_id: str,
    ts: int,
    *,
    channel: str,
    offer_id: str,
    kind: str,
    decision_id: str | None,
) -> dict[str, Any]:
    """An Outcome record (`decision_id` None: attributed by offer and channel, if at all)."""
    return {
        "event_id": event_id,
        "decision_id": decision_id,
        "customer_id": customer_id,
        "ts": ts,
        "channel": channel,
        "offer_id": offer_id,
        "type": kind,
        "value": 25.0 if kind == "convert" else None,
    }


def _item(kind: str, record: dict[str, Any]) -> Item:
    topic, schema = TOPIC_BY_KIND[kind]
    return Item(topic, schema, record["customer_id"], record["ts"], record)


def _profile(event_id: str, cid: str, ts: int, kind: str, **fields: Any) -> Item:
    record = {
        "event_id": event_id,
        "customer_id": cid,
        "ts": ts,
        "type": kind,
        "channel": fields.get("channel"),
        "granted": fields.get("granted"),
        "attributes": fields.get("attributes"),
        "linked_id": None,
    }
    return _item("profile", record)


def _click(rng: random.Random, eid: str, cid: str, ts: int, s: _Session) -> Item:
    kind = rng.choices(_CLICK_TYPES, _CLICK_WEIGHTS)[0]
    if kind in ("remove_from_cart", "checkout_start", "purchase_complete") and not s.cart:
        kind = "product_view"
    category = rng.choices(_CATEGORIES, _CATEGORY_WEIGHTS)[0]
    product: str | None = None
    price: float | None = None
    quantity: int | None = None
    page: str | None = rng.choice(_PAGES)
    if kind in ("product_view", "add_to_cart"):
        product = f"sku-{category[:4]}-{rng.randint(1, 400)}"
        price = round(rng.lognormvariate(3.6, 0.9), 2)
        page = f"/p/{product}"
        if kind == "add_to_cart":
            quantity = rng.randint(1, 3)
            s.cart[product] = price
    elif kind == "remove_from_cart":
        product = rng.choice(list(s.cart))
        del s.cart[product]
        quantity = 1
    elif kind == "purchase_complete":
        s.cart.clear()
        page = "/shop/thanks"
    elif kind == "search":
        page = "/search"
    if kind not in ("product_view", "add_to_cart", "search", "purchase_complete"):
        category = None  # type: ignore[assignment]
    record = {
        "event_id": eid,
        "customer_id": cid,
        "ts": ts,
        "session_id": s.session_id,
        "type": kind,
        "page": page,
        "product_id": product,
        "category": category,
        "price": price,
        "quantity": quantity,
        "anonymous_id": None,
    }
    return _item("click", record)


def _txn(rng: random.Random, eid: str, cid: str, ts: int) -> Item:
    roll = rng.random()
    category: str | None = None
    if roll < 0.55:
        kind, amount = "purchase", round(rng.lognormvariate(4.0, 1.1), 2)
        status = "approved" if rng.random() < 0.95 else "declined"
        category = rng.choices(_CATEGORIES, _CATEGORY_WEIGHTS)[0]
    elif roll < 0.80:
        kind, status = "payment", "approved"
        if rng.random() < 0.3:
            category, amount = "salary", float(rng.randint(1500, 6500))
        else:
            category, amount = "bill", round(rng.uniform(10, 300), 2)
    elif roll < 0.85:
        kind, amount, status = "refund", round(rng.uniform(5, 200), 2), "approved"
    else:
        kind, amount = "credit_check", 0.0
        status = "passed" if rng.random() < 0.8 else "failed"
    record = {
        "event_id": eid,
        "customer_id": cid,
        "ts": ts,
        "transaction_id": "t" + eid,
        "type": kind,
        "amount": amount,
        "currency": "EUR",
        "status": status,
        "product_id": None,
        "category": category,
    }
    return _item("txn", record)


def _complaint(  # noqa: PLR0917 - private, hot
    rng: random.Random, eid: str, cid: str, ts: int, cpid: str, status: str
) -> Item:
    record = {
        "event_id": eid,
        "customer_id": cid,
        "ts": ts,
        "complaint_id": cpid,
        "category": rng.choice(("billing", "delivery", "card", "app", "service")),
        "severity": rng.choices(("low", "medium", "high"), (40, 40, 20))[0],
        "status": status,
        "channel": rng.choice(("email", "call_center", "web")),
    }
    return _item("complaint", record)


# --- producing ---------------------------------------------------------------------------------


@dataclass
class ProduceStats:
    """What `produce_items` sent: records per logical topic, bytes, seconds."""

    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    by_topic: Counter[str] = field(default_factory=Counter)


def produce_items(
    settings: Settings,
    items: Iterable[Item],
    *,
    on_sent: Callable[[Item, float], None] | None = None,
    flush_every: int = 0,
) -> ProduceStats:
    """Encode `items` as Avro and produce them keyed by customer id; wait for every ack.

    `on_sent(item, perf_counter)` is called right after each record is handed to the client.
    """
    from confluent_kafka import KafkaError, Message, Producer

    from rtim.kafka.config import producer_config
    from rtim.serde.codec import Codec

    codec = Codec.from_settings(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    stats = ProduceStats()
    physical = {t: settings.topic(t) for t, _s in TOPIC_BY_KIND.values()}
    started = time.perf_counter()
    for item in items:
        topic = physical[item.topic]
        value = codec.encode(item.schema, item.record, topic=topic)
        while True:
            try:
                producer.produce(
                    topic, value, item.key.encode(), timestamp=item.ts, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.05)
        if on_sent is not None:
            on_sent(item, time.perf_counter())
        stats.records += 1
        stats.bytes += len(value)
        stats.by_topic[item.topic] += 1
        if flush_every and stats.records % flush_every == 0:
            producer.flush(60)
        elif stats.records % 1000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise BrokerError("the broker did not acknowledge every bench record within 120 s")
    if errors:
        raise BrokerError(f"producing the bench workload failed: {errors[0]}")
    stats.seconds = time.perf_counter() - started
    return stats
