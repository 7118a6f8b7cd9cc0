"""A simulated population of customers and the events they cause, pure and deterministic.

Every customer has *hidden traits* (`Traits`: value, price sensitivity, channel preferences,
credit risk, temper, interests, activity) that drive what they do, and *observable correlates*
that an online model can learn from: profile attributes (age, segment, income band, region, …),
consent per channel, browsing interests, salary, purchases, credit checks and complaints.

`Simulation(population, start_ms=…, events_per_sim_s=…)` turns the population into a stream of
`SimRecord`s — exactly the records a real upstream system would produce on rtim's public
topics — in event-time order. It is deterministic for a seed: the output does not depend on the
wall clock nor on how the stream is cut into chunks (`events_until` may be called with any
increasing sequence of times). Nothing here does I/O; time and randomness are inputs.

Event time: each customer *joins* the bank before `start_ms` (their attributes and consent
events are stamped then, so tenure is realistic); behaviour (sessions, transactions,
complaints, calls, consent changes) starts at `start_ms`, one episode at a time, at Poisson
times whose intensity gives `events_per_sim_s` events per simulated second on average.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, NamedTuple

from rtim.core.features import CHANNELS

__all__ = [
    "BANK_CATEGORIES",
    "CATEGORIES",
    "CHANNELS",
    "DEFAULT_MIX",
    "KIND_OF_SCHEMA",
    "SHOP_CATEGORIES",
    "Customer",
    "Mix",
    "Population",
    "SimRecord",
    "Simulation",
    "Traits",
    "customer_id_of",
    "run_tag",
]

SHOP_CATEGORIES: Final = ("electronics", "fashion", "home", "travel", "auto", "groceries")
BANK_CATEGORIES: Final = ("credit_card", "loan", "mortgage", "savings", "insurance")
CATEGORIES: Final = SHOP_CATEGORIES + BANK_CATEGORIES
REGIONS: Final = ("north", "south", "east", "west", "central")
INCOME_BANDS: Final = ("low", "lower_middle", "middle", "upper_middle", "high")
SEGMENTS: Final = ("basic", "silver", "gold", "platinum")
# consent "channels": the outbound channels plus the marketing purpose of the example strategy
CONSENT_TOPICS: Final = ("email", "push", "sms", "outbound_call", "marketing")
COMPLAINT_CATEGORIES: Final = ("fees", "card_blocked", "delivery", "app_error", "service")
BILL_CATEGORIES: Final = ("utilities", "rent", "telecom", "insurance_premium")

TOPIC_CLICK: Final = "rtim.events.clickstream"
TOPIC_TXN: Final = "rtim.events.transactions"
TOPIC_COMPLAINT: Final = "rtim.events.complaints"
TOPIC_PROFILE: Final = "rtim.events.profile"
TOPIC_REQUEST: Final = "rtim.requests"

#: Avro schema name → the short event kind (the keys of the counters, as in rtim.core.events).
KIND_OF_SCHEMA: Final[dict[str, str]] = {
    "ClickstreamEvent": "click",
    "TransactionEvent": "txn",
    "ComplaintEvent": "complaint",
    "ProfileEvent": "profile",
    "DecisionRequest": "request",
    "Outcome": "outcome",
}

_CH_INDEX: Final = {name: i for i, name in enumerate(CHANNELS)}
# typical unit prices per shop category: (median, spread of the log)
_PRICES: Final = {
    "electronics": (120.0, 1.1),
    "fashion": (45.0, 0.6),
    "home": (60.0, 0.9),
    "travel": (600.0, 0.7),
    "auto": (80.0, 0.8),
    "groceries": (12.0, 0.5),
}
_SECOND: Final = 1000
_MINUTE: Final = 60_000
_HOUR: Final = 3_600_000
_DAY: Final = 86_400_000


class SimRecord(NamedTuple):
    """One record to produce: logical topic, key (the customer id), Avro schema, record."""

    topic: str
    key: str
    schema: str
    record: dict[str, Any]

    @property
    def topic_logical(self) -> str:
        """The logical topic (alias of `topic`; the prefix is added when producing)."""
        return self.topic

    @property
    def kind(self) -> str:
        """The event kind: click, txn, complaint, profile, request (or outcome)."""
        return KIND_OF_SCHEMA[self.schema]


@dataclass(frozen=True, slots=True)
class Traits:
    """What a customer is like. The first group is hidden from rtim; the rest is observable."""

    # hidden
    value: float  # 0..1: wealth / lifetime value
    price_sensitivity: float  # 0..1
    credit_risk: float  # 0..1: probability a credit check fails
    temper: float  # 0..1: complaints, dismissals, unsubscribes
    activity: float  # mean 1: how often they show up
    channel_pref: tuple[float, ...]  # 0..1 per channel, in CHANNELS order
    interests: tuple[str, ...]  # favourite browsing categories
    # observable (sent as attributes, or visible in behaviour)
    age: int
    segment: str
    income_band: str
    region: str
    has_children: bool
    homeowner: bool
    app_user: bool
    salary: float  # monthly, 0 = none
    tenure_days: int  # joined this long before the simulation starts

    def pref(self, channel: str) -> float:
        """The hidden preference for a channel (0..1)."""
        return self.channel_pref[_CH_INDEX[channel]]

    def attributes(self) -> dict[str, str]:
        """The attributes the CRM knows (ProfileEvent attributes, always text)."""
        return {
            "age": str(self.age),
            "segment": self.segment,
            "income_band": self.income_band,
            "region": self.region,
            "has_children": "true" if self.has_children else "false",
            "homeowner": "true" if self.homeowner else "false",
            "app_user": "true" if self.app_user else "false",
        }


@dataclass(slots=True)
class Customer:
    """A customer: identity, hidden traits and the little state their behaviour needs."""

    index: int
    customer_id: str
    traits: Traits
    consent: dict[str, bool]  # answered consent questions at joining (topic → granted)
    # generation state (changed by the simulation)
    seq: int = 0
    sessions: int = 0
    complaints: int = 0
    onboarded: bool = False
    cart: dict[str, tuple[int, float, str]] = field(default_factory=dict)
    open_until: int = 0  # an open complaint is resolved at this event time


def customer_id_of(index: int) -> str:
    """The customer id of the `index`-th customer (0-based)."""
    return f"c{index:07d}"


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def _band(x: float, names: tuple[str, ...], cuts: tuple[float, ...]) -> str:
    for name, cut in zip(names, cuts, strict=False):
        if x < cut:
            return name
    return names[-1]


def _make_traits(rng: random.Random) -> tuple[Traits, dict[str, bool]]:
    g = rng.gauss
    age = int(_clamp(g(44, 16), 16, 90))
    young = age < 30
    old = age > 55
    value = _clamp(rng.betavariate(2, 5) + 0.004 * (age - 40) + (-0.08 if age < 23 else 0.0))
    price_sensitivity = _clamp(0.75 - 0.6 * value + (0.15 if young else 0.0) + g(0, 0.15))
    credit_risk = _clamp(
        rng.betavariate(1.5, 5) + 0.25 * (1 - value) - 0.12 + (0.1 if age < 25 else 0.0)
    )
    temper = rng.betavariate(2, 4)
    activity = rng.lognormvariate(0, 0.5) / math.exp(0.125)
    # channel preferences: by age, plus individual taste
    if young:
        base = (0.6, 0.7, 0.35, 0.5, 0.25, 0.15)
    elif old:
        base = (0.4, 0.25, 0.6, 0.35, 0.55, 0.45)
    else:
        base = (0.5, 0.5, 0.5, 0.4, 0.4, 0.3)
    channel_pref = tuple(round(_clamp(b + g(0, 0.15), 0.02, 0.98), 4) for b in base)
    app_user = rng.random() < _clamp(0.8 - 0.008 * (age - 30), 0.2, 0.95)
    has_children = rng.random() < (0.45 if 28 <= age <= 55 else 0.08)
    homeowner = rng.random() < _clamp(0.05 + 0.8 * value + 0.01 * (age - 30), 0.02, 0.95)
    weights = [1.0] * len(CATEGORIES)
    for name, w in (("fashion", 1.5 if young else 0.8), ("travel", 1.3 if value > 0.4 else 0.7),
                    ("home", 1.6 if homeowner else 0.6), ("electronics", 1.4 if young else 1.0),
                    ("mortgage", 0.2 if homeowner or age > 60 else 0.8),
                    ("loan", 0.6 + 1.5 * credit_risk), ("credit_card", 0.7 + 0.8 * value),
                    ("savings", 0.4 + 1.2 * value), ("groceries", 1.2)):  # fmt: skip
        weights[CATEGORIES.index(name)] = w
    interests: list[str] = []
    for _ in range(3 if rng.random() < 0.4 else 2):
        pick = rng.choices(CATEGORIES, weights)[0]
        if pick not in interests:
            interests.append(pick)
    salary = 0.0 if age < 21 and rng.random() < 0.6 else round(1300 + 7000 * value**1.3, -1)
    tenure_days = int(rng.uniform(1, 90)) if rng.random() < 0.12 else int(rng.uniform(90, 3000))
    traits = Traits(
        value=round(value, 4),
        price_sensitivity=round(price_sensitivity, 4),
        credit_risk=round(credit_risk, 4),
        temper=round(temper, 4),
        activity=round(activity, 4),
        channel_pref=channel_pref,
        interests=tuple(interests),
        age=age,
        segment=_band(_clamp(value + g(0, 0.05)), SEGMENTS, (0.25, 0.45, 0.7)),
        income_band=_band(_clamp(value + g(0, 0.08)), INCOME_BANDS, (0.15, 0.3, 0.45, 0.65)),
        region=rng.choice(REGIONS),
        has_children=has_children,
        homeowner=homeowner,
        app_user=app_user,
        salary=salary,
        tenure_days=tenure_days,
    )
    # consent asked at joining: people say yes to channels they like (opt-in; no answer = no)
    consent: dict[str, bool] = {}
    for topic, p_yes in (
        ("email", 0.55 + 0.4 * channel_pref[2]),
        ("push", (0.45 + 0.5 * channel_pref[1]) if app_user else 0.0),
        ("sms", 0.1 + 0.45 * channel_pref[3]),
        ("outbound_call", 0.03 + 0.35 * channel_pref[5]),
    ):
        if rng.random() < p_yes:
            consent[topic] = True
        elif rng.random() < 0.3:  # some answer "no" explicitly
            consent[topic] = False
    u = rng.random()
    if u < 0.05 + 0.1 * temper:
        consent["marketing"] = False
    elif u < 0.65:
        consent["marketing"] = True
    return traits, consent


class Population:
    """`customers` customers with traits drawn from `seed`.

    A customer's traits depend only on (seed, index): customer 7 is the same person in a
    population of 10 and of a million.
    """

    def __init__(self, seed: int, customers: int) -> None:
        if customers < 1:
            raise ValueError("a population needs at least one customer")
        self.seed = seed
        self.customers: list[Customer] = []
        for i in range(customers):
            traits, consent = _make_traits(random.Random(f"rtim.sim:{seed}:{i}"))
            self.customers.append(Customer(i, customer_id_of(i), traits, consent))
        self._by_id = {c.customer_id: c for c in self.customers}

    def __len__(self) -> int:
        return len(self.customers)

    def __iter__(self) -> Iterator[Customer]:
        return iter(self.customers)

    def get(self, customer_id: str) -> Customer | None:
        """The customer with this id, or None."""
        return self._by_id.get(customer_id)

    def __getitem__(self, customer_id: str) -> Customer:
        return self._by_id[customer_id]


@dataclass(frozen=True, slots=True)
class Mix:
    """Relative frequency of each kind of episode (a browsing session, a transaction, …).

    The defaults give ≈ 80 % clickstream, 10 % transactions, 2 % complaints and 8 % decision
    requests among behavioural events (excluding outcomes and the joining events).
    """

    session: float = 0.40
    transaction: float = 0.30
    complaint: float = 0.06
    call: float = 0.07
    profile: float = 0.02


DEFAULT_MIX: Final = Mix()


def run_tag(seed: int, start_ms: int) -> str:
    """A short tag unique to (seed, start): the prefix of every id a simulation makes."""
    digest = hashlib.blake2b(f"{seed}:{start_ms}".encode(), digest_size=3).hexdigest()
    return f"s{digest}"


class Simulation:
    """The event stream of a population, from `start_ms` on, in event-time order.

    `events_per_sim_s`: mean number of behavioural events per simulated second (the driver
    uses rate / speedup). `seed` defaults to the population's. `onboarding`: also emit each
    customer's joining events (attributes, consent), stamped before `start_ms`.
    """

    def __init__(
        self,
        population: Population,
        *,
        start_ms: int,
        events_per_sim_s: float,
        seed: int | None = None,
        mix: Mix = DEFAULT_MIX,
        onboarding: bool = True,
        _episode_size: float | None = None,
    ) -> None:
        if events_per_sim_s <= 0:
            raise ValueError("events_per_sim_s must be > 0")
        self.population = population
        self.seed = population.seed if seed is None else seed
        self.start_ms = start_ms
        self.mix = mix
        self.tag = run_tag(self.seed, start_ms)
        self.counts: Counter[str] = Counter()  # records emitted so far, by kind
        self._rng = random.Random(f"rtim.sim.events:{self.seed}:{start_ms}")
        size = _episode_size if _episode_size is not None else mean_episode_size(mix)
        # mean gap between two episodes of a customer of activity 1, in ms
        self._gap_ms = 1000.0 * len(population) * size / events_per_sim_s
        total = mix.session + mix.transaction + mix.complaint + mix.call + mix.profile
        self._cum = tuple(
            x / total
            for x in (
                mix.session,
                mix.session + mix.transaction,
                mix.session + mix.transaction + mix.complaint,
                mix.session + mix.transaction + mix.complaint + mix.call,
            )
        )
        self._prefix = [f"{self.tag}.{c.index}." for c in population.customers]
        self._seq = 0  # tie-breaker of the pending heap: generation order
        self._pending: list[tuple[int, int, SimRecord]] = []
        self._now = -(1 << 62)
        heap: list[tuple[int, int]] = []
        for c in population.customers:
            if onboarding and not c.onboarded:
                joined = start_ms - c.traits.tenure_days * _DAY - self._rng.randrange(_DAY)
                heap.append((joined, c.index))
            else:
                c.onboarded = True
                heap.append((start_ms + self._next_gap(c), c.index))
        heapq.heapify(heap)
        self._customers = heap

    # --- public -------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        """The latest time passed to `events_until` (event time)."""
        return self._now

    def events_until(self, sim_ms: int) -> list[SimRecord]:
        """Every record with event time ≤ `sim_ms` not returned before, in time order."""
        if sim_ms <= self._now:
            return []
        self._now = sim_ms
        customers = self._customers
        members = self.population.customers
        while customers and customers[0][0] <= sim_ms:
            start, index = heapq.heappop(customers)
            c = members[index]
            if c.onboarded:
                # episodes of one customer may overlap (two devices): the rate stays exact
                self._episode(c, start)
            else:
                self._onboard(c, start)
                c.onboarded = True
                start = self.start_ms
            heapq.heappush(customers, (start + self._next_gap(c), index))
        pending = self._pending
        out: list[SimRecord] = []
        append = out.append
        pop = heapq.heappop
        while pending and pending[0][0] <= sim_ms:
            append(pop(pending)[2])
        counts = self.counts
        for rec in out:
            counts[KIND_OF_SCHEMA[rec.schema]] += 1
        return out

    def take(self, n: int, step_ms: int = 60_000) -> list[SimRecord]:
        """At least `n` records, in steps of `step_ms` (skipping idle time), for bulk loads."""
        out: list[SimRecord] = []
        while len(out) < n:
            heads = [h[0][0] for h in (self._pending, self._customers) if h]
            if not heads:
                break
            out.extend(self.events_until(max(self._now + step_ms, min(heads))))
        return out

    # --- scheduling ---------------------------------------------------------------------------
    def _next_gap(self, c: Customer) -> int:
        return 1 + int(self._rng.expovariate(1.0) * self._gap_ms / c.traits.activity)

    def _emit(self, ts: int, topic: str, schema: str, record: dict[str, Any], cid: str) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (ts, self._seq, SimRecord(topic, cid, schema, record)))

    def _id(self, c: Customer) -> str:
        c.seq += 1
        return self._prefix[c.index] + str(c.seq)

    def _episode(self, c: Customer, t: int) -> int:
        """Generate one episode starting at `t`; return when it ends."""
        u = self._rng.random()
        cum = self._cum
        if u < cum[0]:
            return self._session(c, t)
        if u < cum[1]:
            return self._transaction(c, t)
        if u < cum[2]:
            # temper decides who complains: the calm mostly browse instead
            if self._rng.random() < 0.25 + 1.5 * c.traits.temper:
                return self._complaint(c, t)
            return self._session(c, t)
        if u < cum[3]:
            return self._call(c, t)
        return self._profile_change(c, t)

    # --- episodes -----------------------------------------------------------------------------
    def _onboard(self, c: Customer, t: int) -> None:
        cid = c.customer_id
        attributes = c.traits.attributes()
        self._emit(t, TOPIC_PROFILE, "ProfileEvent", _profile(self._id(c), cid, t, "attributes",
                   attributes=attributes), cid)  # fmt: skip
        for k, (topic, granted) in enumerate(c.consent.items(), start=1):
            ts = t + k * 20 * _SECOND
            record = _profile(self._id(c), cid, ts, "consent", channel=topic, granted=granted)
            self._emit(ts, TOPIC_PROFILE, "ProfileEvent", record, cid)

    def _session(self, c: Customer, t: int) -> int:
        rng = self._rng
        r = rng.random
        tr = c.traits
        cid = c.customer_id
        emit = self._emit
        c.sessions += 1
        sid = f"{self._prefix[c.index]}s{c.sessions}"
        app = tr.app_user and r() < 0.55
        device = "app" if app else ("mobile" if r() < 0.5 else "desktop")

        def click(  # noqa: PLR0917 - the hot path: positional is fastest
                  ts: int, kind: str, page: str | None, product: str | None = None,
                  category: str | None = None, price: float | None = None,
                  quantity: int | None = None) -> None:  # fmt: skip
            emit(ts, TOPIC_CLICK, "ClickstreamEvent", {
                "event_id": self._id(c), "customer_id": cid, "ts": ts, "session_id": sid,
                "type": kind, "page": page, "product_id": product, "category": category,
                "price": price, "quantity": quantity, "anonymous_id": None,
            }, cid)  # fmt: skip

        if app and r() < 0.45:
            self._request(c, t, "push", "app_open", {"device": device})
        if r() < 0.35:
            click(t, "login", "/login")
            t += 1 + int(rng.expovariate(1 / 4000))
        click(t, "page_view", "/")
        if not app and r() < 0.45:
            self._request(c, t + 1, "web", "home_banner", {"page": "/", "device": device})
        views = 1 + int(rng.expovariate(1 / 4.6))
        interests = tr.interests
        bank_interest: str | None = None
        cart = c.cart
        for _ in range(views):
            t += 2000 + int(rng.expovariate(1 / 35_000))
            cat = rng.choice(interests) if r() < 0.75 else rng.choice(CATEGORIES)
            bank = cat in BANK_CATEGORIES
            u = r()
            if u < 0.2:
                click(t, "page_view", f"/{'bank' if bank else 'shop'}/{cat}", category=cat)
                continue
            if u < 0.33:
                click(t, "search", "/search", category=cat)
                continue
            if bank:
                bank_interest = cat
                click(t, "product_view", f"/bank/{cat}", f"{cat}-{rng.randrange(4)}", cat)
                if r() < 0.04:
                    self._request(c, t + 1, "web", "product_page", {"page": f"/bank/{cat}",
                                  "category": cat, "device": device})  # fmt: skip
                continue
            median, spread = _PRICES[cat]
            product = f"{cat}-{rng.randrange(60)}"
            price = round(median * math.exp(rng.gauss(0, spread) + 0.6 * (tr.value - 0.3)), 2)
            click(t, "product_view", f"/shop/{cat}/{product}", product, cat, price)
            if r() < 0.03:
                self._request(c, t + 1, "web", "product_page", {"page": f"/shop/{cat}",
                              "category": cat, "device": device})  # fmt: skip
            if r() < 0.16 + 0.1 * tr.value - 0.05 * tr.price_sensitivity:
                t += 1000 + int(rng.expovariate(1 / 10_000))
                qty = 1 if r() < 0.85 else 2
                click(t, "add_to_cart", f"/shop/{cat}/{product}", product, cat, price, qty)
                old = cart.get(product)
                cart[product] = ((old[0] if old else 0) + qty, price, cat)
            elif cart and r() < 0.04:
                gone = next(iter(cart))
                t += 1000
                click(t, "remove_from_cart", "/cart", gone, cart[gone][2], cart[gone][1], None)
                del cart[gone]
        if bank_interest in ("credit_card", "loan", "mortgage") and r() < 0.12:
            t += 30_000 + int(rng.expovariate(1 / 60_000))
            self._credit_check(c, t, bank_interest)
        if cart and r() < 0.5 - 0.2 * tr.price_sensitivity + 0.2 * tr.value:
            t += 5000 + int(rng.expovariate(1 / 20_000))
            click(t, "checkout_start", "/checkout")
            if not app and r() < 0.25:
                self._request(c, t + 1, "web", "checkout", {"page": "/checkout", "device": device})
            t += 20_000 + int(rng.expovariate(1 / 40_000))
            amount = round(sum(q * p for q, p, _ in cart.values()), 2)
            approved = r() >= 0.02 + 0.15 * tr.credit_risk
            top = max(cart.values(), key=lambda item: item[0] * item[1])[2]
            self._txn(c, t, "purchase", amount, "approved" if approved else "declined", top,
                      product=next(iter(cart)))  # fmt: skip
            if approved:
                click(t + 500, "purchase_complete", "/checkout/done", None, top, amount)
                cart.clear()
        if r() < 0.2:
            t += 3000 + int(rng.expovariate(1 / 20_000))
            click(t, "logout", "/logout")
        return t

    def _transaction(self, c: Customer, t: int) -> int:
        rng = self._rng
        tr = c.traits
        u = rng.random()
        if u < 0.62:
            cat = rng.choice(tr.interests) if rng.random() < 0.6 else rng.choice(SHOP_CATEGORIES)
            if cat not in _PRICES:
                cat = "groceries"
            median, spread = _PRICES[cat]
            amount = round(median * math.exp(rng.gauss(0, spread) + 0.8 * (tr.value - 0.3)), 2)
            approved = rng.random() >= 0.01 + 0.1 * tr.credit_risk
            self._txn(c, t, "purchase", amount, "approved" if approved else "declined", cat,
                      product=f"{cat}-{rng.randrange(60)}")  # fmt: skip
        elif u < 0.77:
            cat = rng.choice(BILL_CATEGORIES)
            amount = round(rng.uniform(30, 120) + 900 * tr.value * (cat == "rent"), 2)
            approved = rng.random() >= 0.01 + 0.08 * tr.credit_risk
            self._txn(c, t, "payment", amount, "approved" if approved else "declined", cat)
        elif u < 0.83:
            cat = rng.choice(SHOP_CATEGORIES)
            median, _spread = _PRICES[cat]
            self._txn(c, t, "refund", round(median * rng.uniform(0.3, 1.5), 2), "approved", cat)
        elif u < 0.95 and tr.salary > 0:
            amount = round(tr.salary * rng.uniform(0.97, 1.03), 2)
            self._txn(c, t, "payment", amount, "approved", "salary")
        else:
            self._credit_check(c, t, rng.choice(("credit_card", "loan", "mortgage")))
        return t

    def _credit_check(self, c: Customer, t: int, category: str) -> None:
        failed = self._rng.random() < c.traits.credit_risk
        self._txn(c, t, "credit_check", 0.0, "failed" if failed else "passed", category)

    def _complaint(self, c: Customer, t: int) -> int:
        rng = self._rng
        temper = c.traits.temper
        cid = c.customer_id
        c.complaints += 1
        complaint_id = f"{self._prefix[c.index]}k{c.complaints}"
        u = rng.random()
        severity = (
            "high" if u < 0.05 + 0.3 * temper else "medium" if u < 0.35 + 0.3 * temper else "low"
        )
        category = rng.choice(COMPLAINT_CATEGORIES)
        via = rng.choice(("call_center", "email", "web"))
        self._emit(t, TOPIC_COMPLAINT, "ComplaintEvent", _complaint(
            self._id(c), cid, t, complaint_id, category, severity, "opened", via), cid)  # fmt: skip
        if via == "call_center" and rng.random() < 0.7:
            self._request(c, t + 1, "call_center", "agent_desktop", {"reason": "complaint"})
        mean = {"low": 2 * _HOUR, "medium": 12 * _HOUR, "high": 48 * _HOUR}[severity]
        resolved = t + _MINUTE + int(rng.expovariate(1.0) * mean)
        self._emit(resolved, TOPIC_COMPLAINT, "ComplaintEvent", _complaint(
            self._id(c), cid, resolved, complaint_id, category, severity, "resolved", via),
            cid)  # fmt: skip
        c.open_until = max(c.open_until, resolved)
        return t

    def _call(self, c: Customer, t: int) -> int:
        rng = self._rng
        if c.open_until > t and rng.random() < 0.6:
            reason = "complaint"
        else:
            reason = rng.choice(("question", "card", "loan", "address_change", "payment"))
        self._request(c, t, "call_center", "agent_desktop", {"reason": reason})
        return t + 60_000 + int(rng.expovariate(1 / 240_000))

    def _profile_change(self, c: Customer, t: int) -> int:
        rng = self._rng
        cid = c.customer_id
        if rng.random() < 0.7:
            granted = [k for k, v in c.consent.items() if v]
            if granted and rng.random() < 0.75:
                topic, value = rng.choice(granted), False
            else:
                topic, value = rng.choice(CONSENT_TOPICS), True
            c.consent[topic] = value
            record = _profile(self._id(c), cid, t, "consent", channel=topic, granted=value)
        else:
            record = _profile(self._id(c), cid, t, "attributes",
                              attributes={"region": rng.choice(REGIONS)})  # fmt: skip
        self._emit(t, TOPIC_PROFILE, "ProfileEvent", record, c.customer_id)
        return t

    # --- record builders ----------------------------------------------------------------------
    def _request(
        self, c: Customer, ts: int, channel: str, placement: str, context: dict[str, str]
    ) -> None:
        cid = c.customer_id
        self._emit(ts, TOPIC_REQUEST, "DecisionRequest", {
            "request_id": self._id(c), "customer_id": cid, "ts": ts, "channel": channel,
            "placement": placement, "context": context, "max_actions": 1, "event_id": None,
        }, cid)  # fmt: skip

    def _txn(  # noqa: PLR0917
             self, c: Customer, ts: int, kind: str, amount: float, status: str,
             category: str | None, product: str | None = None) -> None:  # fmt: skip
        cid = c.customer_id
        eid = self._id(c)
        self._emit(ts, TOPIC_TXN, "TransactionEvent", {
            "event_id": eid, "customer_id": cid, "ts": ts, "transaction_id": "t" + eid,
            "type": kind, "amount": amount, "currency": "EUR", "status": status,
            "product_id": product, "category": category,
        }, cid)  # fmt: skip


def _profile(
    event_id: str,
    customer_id: str,
    ts: int,
    kind: str,
    *,
    channel: str | None = None,
    granted: bool | None = None,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer_id,
        "ts": ts,
        "type": kind,
        "channel": channel,
        "granted": granted,
        "attributes": attributes,
        "linked_id": None,
    }


def _complaint(  # noqa: PLR0917
    event_id: str, customer_id: str, ts: int, complaint_id: str, category: str, severity: str,
    status: str, channel: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "event_id": event_id,
        "customer_id": customer_id,
        "ts": ts,
        "complaint_id": complaint_id,
        "category": category,
        "severity": severity,
        "status": status,
        "channel": channel,
    }


@lru_cache(maxsize=16)
def mean_episode_size(mix: Mix = DEFAULT_MIX) -> float:
    """Mean number of records per episode under `mix`, measured on a fixed pilot population.

    The simulation uses it to space episodes so that the event rate matches the one asked for.
    """
    population = Population(seed=-1, customers=400)
    sim = Simulation(population, start_ms=0, events_per_sim_s=1.0, mix=mix, _episode_size=1.0)
    episodes = 0
    t = 0
    for _ in range(10):
        for c in population.customers:
            sim._episode(c, t)
            episodes += 1
        t += _DAY
    return len(sim._pending) / episodes
