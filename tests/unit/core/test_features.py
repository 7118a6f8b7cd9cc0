"""Feature snapshot details that the decision log's bytes depend on."""

from __future__ import annotations

from rtim.core.features import compute_features
from rtim.core.profile import DAY_MS, new_profile

NOW = 1_790_000_000_000


def test_aggregates_of_nothing_are_the_int_zero() -> None:
    # the log writes an int as a long and a float as a double: the type is part of the output
    f = compute_features(new_profile("c1"), NOW)
    for name in ("cart_value", "cart_items", "purchases_30d", "purchase_amount_30d",
                 "refunds_30d", "complaints_90d", "contacts_today", "contacts_7d"):  # fmt: skip
        assert f[name] == 0
        assert type(f[name]) is int, name


def test_aggregates_count_only_their_window() -> None:
    p = {
        **new_profile("c1"),
        "purchase_days": ((NOW // DAY_MS - 40, 1, 99.0), (NOW // DAY_MS - 2, 2, 30.5)),
        "refund_days": ((NOW // DAY_MS - 1, 1, 5.0),),
        "cart": {"sku": (2, 10.25, "toys", NOW - 1000)},
        "complaint_times": (NOW - 100 * DAY_MS, NOW - 3 * DAY_MS),
        "contacts": ((NOW - 8 * DAY_MS, "email", "o1"), (NOW - 1000, "web", "o2")),
    }
    f = compute_features(p, NOW)  # type: ignore[arg-type]
    assert (f["purchases_30d"], f["purchase_amount_30d"], f["refunds_30d"]) == (2, 30.5, 1)
    assert (f["cart_value"], f["cart_items"]) == (20.5, 2)
    assert f["complaints_90d"] == 1
    assert (f["contacts_7d"], f["contacts_today"], f["contacts_today.web"]) == (1, 1, 1)
