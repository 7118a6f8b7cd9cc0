"""The golden record: one profile per customer, updated by a pure `apply(profile, event)`.

A profile is a value: `apply` never changes its input, it returns a new profile that shares the
sections the event did not touch. It is a plain dict (a `TypedDict`) because copying and
serialising dicts is what CPython does fastest — this is the hot path of every event. Every
collection is bounded, so a profile stays small however long the customer lives.

Exactly-once application under at-least-once delivery rests on two markers kept *inside* the
profile, so they are written atomically with the state they protect:
- `applied[kind]`: the offset of the last record of each input topic applied to this customer
  (a customer's records of one topic live in one partition, in offset order), so a redelivered
  record is recognised after a crash;
- `recent_ids`: hashes of the last event ids, so an upstream duplicate (same event_id sent twice)
  is applied once.
"""

from __future__ import annotations

from typing import Any, Final, TypedDict

import msgpack

from rtim.core.events import Event, event_hash

__all__ = [
    "DAY_MS",
    "Contact",
    "PendingAttribution",
    "Profile",
    "TimerEntry",
    "apply",
    "decode_profile",
    "encode_profile",
    "is_redelivery",
    "new_profile",
]

DAY_MS: Final = 86_400_000
WINDOW_DAYS: Final = 30
COMPLAINT_HISTORY_MS: Final = 90 * DAY_MS

# Bounds that keep a profile small.
MAX_PAGES: Final = 5
MAX_CART_ITEMS: Final = 20
MAX_CATEGORIES: Final = 12
MAX_ATTRIBUTES: Final = 32
MAX_LINKED_IDS: Final = 8
MAX_OFFER_MEMORY: Final = 32
MAX_COMPLAINTS: Final = 16
MAX_ANONYMOUS_IDS: Final = 3

# (ts, channel, offer_id): an emitted outbound contact, for caps and cooldowns.
Contact = tuple[int, str, str]
# (due, name, trigger_id, kind): a delayed trigger or attribution expiry, in event time.
TimerEntry = tuple[int, str, str, str]
# An action awaiting its outcome (rtim.core.attribution): (decision_id, decision ts, channel index
# in CHANNELS, offer_id, logged propensity, control_group, attribution window in seconds,
# packed model features). Kept compact: it is the largest per-decision state of a profile.
PendingAttribution = tuple[str, int, int, str, float, bool, int, tuple[Any, ...]]


class Profile(TypedDict, total=False):
    """The golden record of one customer. Missing keys mean "never seen"."""

    customer_id: str
    version: int  # events applied
    created_ts: int
    updated_ts: int  # newest event time applied
    applied: dict[str, int]  # input kind → offset of the last applied record
    recent_ids: tuple[int, ...]  # hashes of the most recent event ids
    # clickstream
    session_id: str
    session_start: int
    session_page_views: int
    last_activity_ts: int
    recent_pages: tuple[str, ...]
    cart: dict[str, tuple[int, float, str | None, int]]  # product → (qty, price, category, ts)
    last_add_to_cart_ts: int
    last_checkout_ts: int
    last_purchase_complete_ts: int
    category_interest: dict[str, int]
    anonymous_ids: tuple[str, ...]
    # transactions: day buckets (day number, count, amount) over the last 30 days
    purchase_days: tuple[tuple[int, int, float], ...]
    refund_days: tuple[tuple[int, int, float], ...]
    last_purchase_ts: int
    last_purchase_amount: float
    declined_payments: int
    credit_check: tuple[str, int]  # (passed|failed, ts)
    last_salary: tuple[int, float]  # (ts, amount)
    # complaints
    open_complaints: dict[str, tuple[str, str, int]]  # id → (severity, category, opened ts)
    complaint_times: tuple[int, ...]
    last_complaint_ts: int
    last_complaint_severity: str
    # consent, attributes, identity
    consent: dict[str, tuple[bool, int]]  # channel → (granted, ts)
    attributes: dict[str, str]
    linked_ids: tuple[str, ...]
    # contact history, decisions and what the customer did with them
    contacts: tuple[Contact, ...]
    offer_last_shown: dict[str, int]
    offer_responses: dict[str, tuple[str, int]]  # offer → (outcome type, ts)
    timers: tuple[TimerEntry, ...]
    # decisioning state (rtim.core.decisioning / attribution), all bounded and pruned by time
    pending: tuple[PendingAttribution, ...]  # actions awaiting an outcome, oldest first
    offer_shows: dict[str, tuple[int, ...]]  # offer → recent decision times (per-offer caps)
    trigger_fired: dict[str, int]  # trigger → last time it acted (trigger cooldowns)
    signals: dict[str, int]  # signal key → latest time (suppress rules' `after`)
    # erasure: once set, the profile holds nothing else and later events are ignored
    erased_ts: int


def new_profile(customer_id: str) -> Profile:
    """An empty profile for a customer rtim has not seen yet."""
    return {"customer_id": customer_id, "version": 0}


def is_redelivery(profile: Profile, event: Event, dedup_window: int) -> bool:
    """True if this record (same offset) or this event (same id) was applied already."""
    if event.offset >= 0 and profile.get("applied", {}).get(event.kind, -1) >= event.offset:
        return True
    ids = profile.get("recent_ids")
    return bool(ids) and event_hash(event.event_id) in ids[-dedup_window:]  # type: ignore[index]


def apply(profile: Profile, event: Event, dedup_window: int = 16) -> Profile:
    """Return the profile after `event`. A redelivered or duplicate event (`is_redelivery`)
    returns `profile` itself; any other event a new profile.

    Events of an erased customer only advance the offset marker: nothing else is kept.
    """
    offset = event.offset
    applied = profile.get("applied", {})
    if offset >= 0 and applied.get(event.kind, -1) >= offset:
        return profile
    ids = profile.get("recent_ids", ())
    id_hash = event_hash(event.event_id)  # once: the check and the new recent_ids share it
    if id_hash in ids[-dedup_window:]:
        return profile
    p: Profile = profile.copy()
    if offset >= 0:
        p["applied"] = {**applied, event.kind: offset}
    if profile.get("erased_ts"):
        return p
    p["recent_ids"] = (*ids[len(ids) - dedup_window + 1 :], id_hash)
    ts = event.ts
    p["version"] = profile.get("version", 0) + 1
    if not profile.get("created_ts"):
        p["created_ts"] = ts
    if ts > profile.get("updated_ts", 0):
        p["updated_ts"] = ts
    _REDUCERS[event.kind](p, event.record, ts)
    return p


# --- reducers: each updates the fresh copy `p` in place, replacing (never mutating) sections ---


def _apply_click(p: Profile, r: dict[str, Any], ts: int) -> None:
    kind = r["type"]
    if ts > p.get("last_activity_ts", 0):
        p["last_activity_ts"] = ts
    if r["session_id"] != p.get("session_id"):
        p["session_id"] = r["session_id"]
        p["session_start"] = ts
        p["session_page_views"] = 0
        p["recent_pages"] = ()
    if kind in ("page_view", "product_view"):
        p["session_page_views"] = p.get("session_page_views", 0) + 1
        page = r.get("page")
        if page:
            p["recent_pages"] = (*p.get("recent_pages", ())[-(MAX_PAGES - 1) :], page)
    category = r.get("category")
    if category and kind in ("product_view", "add_to_cart", "search", "purchase_complete"):
        p["category_interest"] = _bump(p.get("category_interest", {}), category)
    product = r.get("product_id")
    if kind == "add_to_cart" and product:
        cart = dict(p.get("cart", {}))
        qty = max(1, r.get("quantity") or 1)
        old = cart.get(product)
        cart[product] = ((old[0] if old else 0) + qty, float(r.get("price") or 0.0), category, ts)
        if len(cart) > MAX_CART_ITEMS:
            del cart[min(cart, key=lambda k: cart[k][3])]
        p["cart"] = cart
        if ts > p.get("last_add_to_cart_ts", 0):
            p["last_add_to_cart_ts"] = ts
    elif kind == "remove_from_cart" and product and product in p.get("cart", {}):
        cart = dict(p["cart"])
        qty_now, price, cat, added = cart[product]
        remaining = qty_now - max(1, r.get("quantity") or qty_now)
        if remaining > 0:
            cart[product] = (remaining, price, cat, added)
        else:
            del cart[product]
        p["cart"] = cart
    elif kind == "checkout_start":
        if ts > p.get("last_checkout_ts", 0):
            p["last_checkout_ts"] = ts
    elif kind == "purchase_complete":
        p["cart"] = {}
        if ts > p.get("last_purchase_complete_ts", 0):
            p["last_purchase_complete_ts"] = ts
    anonymous = r.get("anonymous_id")
    if anonymous and anonymous not in p.get("anonymous_ids", ()):
        kept = p.get("anonymous_ids", ())[-(MAX_ANONYMOUS_IDS - 1) :]
        p["anonymous_ids"] = (*kept, anonymous)


def _apply_txn(p: Profile, r: dict[str, Any], ts: int) -> None:
    kind, status, amount = r["type"], r["status"], float(r["amount"])
    if kind == "credit_check":
        if ts >= p.get("credit_check", ("", 0))[1]:
            p["credit_check"] = (status, ts)
        return
    if status in ("declined", "failed"):
        p["declined_payments"] = p.get("declined_payments", 0) + 1
        return
    if kind == "purchase":
        p["purchase_days"] = _add_to_days(p.get("purchase_days", ()), ts, amount)
        if ts >= p.get("last_purchase_ts", 0):
            p["last_purchase_ts"] = ts
            p["last_purchase_amount"] = amount
        category = r.get("category")
        if category:
            p["category_interest"] = _bump(p.get("category_interest", {}), category)
    elif kind == "refund":
        p["refund_days"] = _add_to_days(p.get("refund_days", ()), ts, amount)
    elif (
        kind == "payment"
        and r.get("category") == "salary"
        and ts >= p.get("last_salary", (0, 0.0))[0]
    ):
        p["last_salary"] = (ts, amount)


def _apply_complaint(p: Profile, r: dict[str, Any], ts: int) -> None:
    complaint_id = r["complaint_id"]
    open_ = p.get("open_complaints", {})
    if r["status"] == "opened":
        open_ = {**open_, complaint_id: (r["severity"], r["category"], ts)}
        if len(open_) > MAX_COMPLAINTS:
            del open_[min(open_, key=lambda k: open_[k][2])]
        p["open_complaints"] = open_
        horizon = ts - COMPLAINT_HISTORY_MS
        times = tuple(t for t in p.get("complaint_times", ()) if t > horizon)
        p["complaint_times"] = (*times[-(MAX_COMPLAINTS - 1) :], ts)
        if ts >= p.get("last_complaint_ts", 0):
            p["last_complaint_ts"] = ts
            p["last_complaint_severity"] = r["severity"]
    elif complaint_id in open_:
        open_ = dict(open_)
        del open_[complaint_id]
        p["open_complaints"] = open_


def _apply_profile_event(p: Profile, r: dict[str, Any], ts: int) -> None:
    kind = r["type"]
    if kind == "consent":
        channel = r["channel"]
        current = p.get("consent", {}).get(channel)
        if current is None or current[1] <= ts:  # an older event never overrides a newer one
            p["consent"] = {**p.get("consent", {}), channel: (bool(r["granted"]), ts)}
    elif kind == "attributes":
        attributes = {**p.get("attributes", {}), **(r.get("attributes") or {})}
        while len(attributes) > MAX_ATTRIBUTES:
            del attributes[next(iter(attributes))]
        p["attributes"] = attributes
    elif kind == "identity_link":
        linked = r["linked_id"]
        if linked not in p.get("linked_ids", ()):
            p["linked_ids"] = (*p.get("linked_ids", ())[-(MAX_LINKED_IDS - 1) :], linked)
    else:  # erasure: keep only what recognises redeliveries and records the erasure
        keep = {"customer_id", "version", "applied", "recent_ids"}
        for key in [k for k in p if k not in keep]:
            del p[key]  # type: ignore[misc]
        p["erased_ts"] = ts
        p["updated_ts"] = ts


def _apply_request(p: Profile, r: dict[str, Any], ts: int) -> None:
    if ts > p.get("last_activity_ts", 0):
        p["last_activity_ts"] = ts


def _apply_outcome(p: Profile, r: dict[str, Any], ts: int) -> None:
    kind, offer_id, channel = r["type"], r["offer_id"], r["channel"]
    if kind in ("click", "accept", "convert", "dismiss", "unsubscribe"):
        responses = {**p.get("offer_responses", {}), offer_id: (kind, ts)}
        if len(responses) > MAX_OFFER_MEMORY:
            del responses[min(responses, key=lambda k: responses[k][1])]
        p["offer_responses"] = responses
    if kind == "unsubscribe":
        current = p.get("consent", {}).get(channel)
        if current is None or current[1] <= ts:
            p["consent"] = {**p.get("consent", {}), channel: (False, ts)}
    if kind in ("click", "accept", "convert") and ts > p.get("last_activity_ts", 0):
        p["last_activity_ts"] = ts


_REDUCERS = {
    "click": _apply_click,
    "txn": _apply_txn,
    "complaint": _apply_complaint,
    "profile": _apply_profile_event,
    "request": _apply_request,
    "outcome": _apply_outcome,
}


def _bump(counts: dict[str, int], key: str) -> dict[str, int]:
    out = {**counts, key: counts.get(key, 0) + 1}
    if len(out) > MAX_CATEGORIES:
        del out[min((k for k in out if k != key), key=lambda k: out[k])]
    return out


def _add_to_days(
    days: tuple[tuple[int, int, float], ...], ts: int, amount: float
) -> tuple[tuple[int, int, float], ...]:
    day = ts // DAY_MS
    newest = max(day, days[-1][0]) if days else day
    kept = [d for d in days if d[0] > newest - WINDOW_DAYS]
    if day <= newest - WINDOW_DAYS:
        return tuple(kept)  # older than the window: nothing to count
    for i, (d, n, total) in enumerate(kept):
        if d == day:
            kept[i] = (d, n + 1, round(total + amount, 2))
            return tuple(kept)
    kept.append((day, 1, round(amount, 2)))
    kept.sort()
    return tuple(kept)


# --- encoding ---------------------------------------------------------------------------------
# Internal state (RocksDB and the changelog topic), never part of the public contract: msgpack
# with short keys. A new key needs a new, unused alias; never reuse an alias (retired: "dc").

_FORMAT: Final = 1
_ALIASES: Final[dict[str, str]] = {
    "customer_id": "id", "version": "v", "created_ts": "c0", "updated_ts": "ut",
    "applied": "ap", "recent_ids": "ids", "session_id": "sid", "session_start": "ss",
    "session_page_views": "spv", "last_activity_ts": "la", "recent_pages": "pg", "cart": "ca",
    "last_add_to_cart_ts": "atc", "last_checkout_ts": "co", "last_purchase_complete_ts": "pc",
    "category_interest": "ci", "anonymous_ids": "an", "purchase_days": "pd",
    "refund_days": "rd", "last_purchase_ts": "lp", "last_purchase_amount": "lpa",
    "declined_payments": "dp", "credit_check": "cc", "last_salary": "sal",
    "open_complaints": "oc", "complaint_times": "ct", "last_complaint_ts": "lc",
    "last_complaint_severity": "lcs", "consent": "cn", "attributes": "at", "linked_ids": "li",
    "contacts": "cx", "offer_last_shown": "ols", "offer_responses": "or",
    "timers": "tm", "erased_ts": "er", "pending": "pa", "offer_shows": "osh",
    "trigger_fired": "tf", "signals": "sg",
}  # fmt: skip
_NAMES: Final[dict[str, str]] = {v: k for k, v in _ALIASES.items()}
# msgpack returns arrays as tuples (use_list=False); these maps must come back as tuples too.
_TUPLE_MAPS: Final = ("cart", "open_complaints", "consent", "offer_responses")


def encode_profile(p: Profile) -> bytes:
    """Serialise a profile compactly (msgpack, short keys)."""
    aliases = _ALIASES
    return msgpack.packb([_FORMAT, {aliases[k]: v for k, v in p.items()}], use_bin_type=True)


def decode_profile(data: bytes) -> Profile:
    """Inverse of `encode_profile`."""
    fmt, raw = msgpack.unpackb(data, use_list=False, raw=False, strict_map_key=False)
    if fmt != _FORMAT:
        raise ValueError(f"unsupported profile format {fmt!r}")
    names = _NAMES
    return {names[k]: v for k, v in raw.items()}  # type: ignore[return-value]
