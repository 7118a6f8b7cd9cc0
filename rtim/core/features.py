"""Features: what a decision knows about a customer at a moment, as a flat, named dict.

The same function serves conditions in the strategy, the models and the decision log (the
feature snapshot), so an explanation always shows the values the decision really used.
Durations are measured against `now` (event time), never the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

from rtim.core.durations import local_day_start
from rtim.core.profile import DAY_MS, WINDOW_DAYS, Profile

__all__ = [
    "CHANNELS",
    "FEATURE_FAMILIES",
    "FEATURE_NAMES",
    "FeatureSubset",
    "FeatureValue",
    "Features",
    "compute_features",
    "is_known_feature",
]

FeatureValue = str | int | float | bool | None
Features = dict[str, FeatureValue]

CHANNELS: Final = ("web", "push", "email", "sms", "call_center", "outbound_call")

FEATURE_NAMES: Final[frozenset[str]] = frozenset(
    {
        "age", "segment", "tenure_days", "customer_value", "is_anonymous",
        "cart_value", "cart_items", "minutes_since_add_to_cart", "session_page_views",
        "minutes_since_last_activity", "minutes_since_checkout",
        "purchases_30d", "purchase_amount_30d", "refunds_30d", "last_purchase_amount",
        "days_since_last_purchase", "declined_payments",
        "credit_check_status", "days_since_credit_check", "salary_amount",
        "days_since_salary",
        "has_open_complaint", "open_complaints", "minutes_since_complaint",
        "last_complaint_severity", "complaints_90d",
        "contacts_today", "contacts_7d",
        "hour_of_day", "day_of_week", "channel", "placement", "trigger",
        "top_interest",
    }
)  # fmt: skip
# Families of features whose suffix is data: attr.<name>, context.<name>, consent.<channel>, …
FEATURE_FAMILIES: Final = (
    "attr.",
    "context.",
    "consent.",
    "contacts_today.",
    "category_interest.",
)

_MINUTE: Final = 60_000
# Amounts and numbers from attributes are capped here: input may carry any finite double, and
# sums of huge ones overflow to infinity, which models cannot learn from (their weights turn
# NaN) and whole-number model inputs could not be stored. No real amount comes near 2**53.
_MAX_NUMBER: Final = 2.0**53


def is_known_feature(name: str) -> bool:
    """True if `name` is a feature (or a member of a feature family) rtim computes."""
    return name in FEATURE_NAMES or any(
        name.startswith(f) and len(name) > len(f) for f in FEATURE_FAMILIES
    )


def _minutes(now: int, ts: int) -> float | None:
    return round((now - ts) / _MINUTE, 2) if ts else None


def _days(now: int, ts: int) -> float | None:
    return round((now - ts) / DAY_MS, 3) if ts else None


def _as_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if -_MAX_NUMBER <= number <= _MAX_NUMBER else None  # NaN and inf too


# Groups of features that share their inputs, in snapshot order. Each adds its features to
# `f`; a condition that reads a few features (a trigger's `when`) computes only their groups.
_Group = Callable[[Profile, int, Features, "ZoneInfo | None"], None]


def _identity(profile: Profile, now: int, f: Features, tz: ZoneInfo | None) -> None:
    attributes = profile.get("attributes", {})
    f["age"] = _as_number(attributes.get("age"))
    f["segment"] = attributes.get("segment")
    f["tenure_days"] = _days(now, profile.get("created_ts", 0))
    f["is_anonymous"] = (
        not attributes and not profile.get("linked_ids") and bool(profile.get("anonymous_ids"))
    )
    for name, value in attributes.items():
        f["attr." + name] = value


def _money(profile: Profile, now: int, f: Features, tz: ZoneInfo | None) -> None:
    # Most collections of most profiles are empty: each aggregate is only computed over a
    # non-empty one (an empty sum is the int 0, as the sums below give for nothing).
    first_day = now // DAY_MS - WINDOW_DAYS
    purchases = [d for d in profile.get("purchase_days", ()) if d[0] > first_day]
    refunds = [d for d in profile.get("refund_days", ()) if d[0] > first_day]
    credit = profile.get("credit_check")
    salary = profile.get("last_salary")
    purchase_amount = min(round(sum(d[2] for d in purchases), 2), _MAX_NUMBER) if purchases else 0
    salary_amount = min(salary[1], _MAX_NUMBER) if salary else 0.0
    # an estimate of monthly value: recent spend plus a share of income
    f["customer_value"] = min(round(purchase_amount + 0.1 * salary_amount, 2), _MAX_NUMBER)
    f["purchases_30d"] = sum(d[1] for d in purchases) if purchases else 0
    f["purchase_amount_30d"] = purchase_amount
    f["refunds_30d"] = sum(d[1] for d in refunds) if refunds else 0
    f["last_purchase_amount"] = min(profile.get("last_purchase_amount", 0.0), _MAX_NUMBER)
    f["days_since_last_purchase"] = _days(now, profile.get("last_purchase_ts", 0))
    f["declined_payments"] = profile.get("declined_payments", 0)
    f["credit_check_status"] = credit[0] if credit else None
    f["days_since_credit_check"] = _days(now, credit[1]) if credit else None
    f["salary_amount"] = salary_amount
    f["days_since_salary"] = _days(now, salary[0]) if salary else None


def _session(profile: Profile, now: int, f: Features, tz: ZoneInfo | None) -> None:
    cart = profile.get("cart", {})
    f["cart_value"] = (
        min(round(sum(q * price for q, price, _c, _t in cart.values()), 2), _MAX_NUMBER)
        if cart
        else 0
    )
    f["cart_items"] = sum(q for q, _p, _c, _t in cart.values()) if cart else 0
    f["minutes_since_add_to_cart"] = _minutes(now, profile.get("last_add_to_cart_ts", 0))
    f["session_page_views"] = profile.get("session_page_views", 0)
    f["minutes_since_last_activity"] = _minutes(now, profile.get("last_activity_ts", 0))
    f["minutes_since_checkout"] = _minutes(now, profile.get("last_checkout_ts", 0))


def _complaints(profile: Profile, now: int, f: Features, tz: ZoneInfo | None) -> None:
    open_complaints = profile.get("open_complaints", {})
    times = profile.get("complaint_times", ())
    quarter_ago = now - 90 * DAY_MS
    f["has_open_complaint"] = bool(open_complaints)
    f["open_complaints"] = len(open_complaints)
    f["minutes_since_complaint"] = _minutes(now, profile.get("last_complaint_ts", 0))
    f["last_complaint_severity"] = profile.get("last_complaint_severity")
    f["complaints_90d"] = sum(1 for t in times if t > quarter_ago) if times else 0


def _moment(profile: Profile, now: int, f: Features, tz: ZoneInfo | None) -> None:
    contacts = profile.get("contacts", ())
    local = datetime.fromtimestamp(now / 1000, tz or UTC)
    day_start = local_day_start(local)  # "today" is the local day, as contact caps count it
    today = [c for c in contacts if day_start <= c[0] <= now] if contacts else []
    week_ago = now - 7 * DAY_MS
    f["contacts_today"] = len(today)
    f["contacts_7d"] = sum(1 for c in contacts if week_ago < c[0] <= now) if contacts else 0
    f["hour_of_day"] = local.hour
    f["day_of_week"] = local.isoweekday()
    for _ts, ch, _offer in today:
        key = "contacts_today." + ch
        f[key] = int(f.get(key) or 0) + 1


def _consent(profile: Profile, now: int, f: Features, tz: ZoneInfo | None) -> None:
    for ch, (granted, _ts) in profile.get("consent", {}).items():
        f["consent." + ch] = granted


def _interest(profile: Profile, now: int, f: Features, tz: ZoneInfo | None) -> None:
    top_count, top = 0, None
    for category, count in profile.get("category_interest", {}).items():
        f["category_interest." + category] = count
        if count > top_count or (count == top_count and top is not None and category < top):
            top_count, top = count, category
    # the category the customer showed most interest in (ties: alphabetical), or null
    f["top_interest"] = top


_GROUPS: Final[tuple[_Group, ...]] = (
    _identity, _money, _session, _complaints, _moment, _consent, _interest,
)  # fmt: skip
_GROUP_OF: Final[dict[str, _Group]] = {
    name: group
    for group, names in (
        (_identity, "age segment tenure_days is_anonymous attr."),
        (
            _money,
            "customer_value purchases_30d purchase_amount_30d refunds_30d last_purchase_amount"
            " days_since_last_purchase declined_payments credit_check_status"
            " days_since_credit_check salary_amount days_since_salary",
        ),
        (
            _session,
            "cart_value cart_items minutes_since_add_to_cart session_page_views"
            " minutes_since_last_activity minutes_since_checkout",
        ),
        (
            _complaints,
            "has_open_complaint open_complaints minutes_since_complaint last_complaint_severity"
            " complaints_90d",
        ),
        (_moment, "contacts_today contacts_7d hour_of_day day_of_week contacts_today."),
        (_consent, "consent."),
        (_interest, "top_interest category_interest."),
    )
    for name in names.split()
}


class FeatureSubset:
    """The features a condition reads, for `compute_features(..., only=...)`.

    A snapshot computed with it holds at least these features, each with the value (and type)
    the full snapshot has; features of the request (channel, placement, trigger, context) are
    always there.
    """

    __slots__ = ("groups", "names")

    def __init__(self, names: Collection[str]) -> None:
        self.names = frozenset(names)
        wanted = {_group_of(name) for name in self.names}
        self.groups = tuple(g for g in _GROUPS if g in wanted)


def _group_of(name: str) -> _Group | None:
    group = _GROUP_OF.get(name)
    if group is None and "." in name:
        group = _GROUP_OF.get(name[: name.index(".") + 1])
    return group


def compute_features(
    profile: Profile,
    now: int,
    *,
    channel: str | None = None,
    placement: str | None = None,
    context: Mapping[str, str] | None = None,
    trigger: str | None = None,
    tz: ZoneInfo | None = None,
    only: FeatureSubset | None = None,
) -> Features:
    """The feature snapshot of `profile` at event time `now` (epoch ms).

    ``only``: compute just the groups of features it names (see `FeatureSubset`).
    """
    f: Features = {"channel": channel, "placement": placement, "trigger": trigger}
    if context:
        for name, value in context.items():
            f["context." + name] = value
    for group in _GROUPS if only is None else only.groups:
        group(profile, now, f, tz)
    return f
