"""The strategy file: the example loads; every kind of mistake is reported, located."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from rtim.core.durations import format_duration, local_day_start, parse_duration
from rtim.core.strategy import (
    CHANNELS,
    EVENT_TYPES,
    InvalidStrategyError,
    Strategy,
    load_strategy,
    parse_strategy,
)
from rtim.errors import StrategyError
from rtim.paths import contract_dir

EXAMPLE = contract_dir("strategies") / "example.yaml"
FIXTURES = Path(__file__).parent / "strategies"

# The feature catalogue as the brief defines it (families end with ".*").
KNOWN = {
    "age",
    "segment",
    "tenure_days",
    "attr.*",
    "cart_value",
    "cart_items",
    "minutes_since_add_to_cart",
    "session_page_views",
    "minutes_since_last_activity",
    "purchases_30d",
    "purchase_amount_30d",
    "last_purchase_amount",
    "days_since_last_purchase",
    "credit_check_status",
    "days_since_credit_check",
    "salary_amount",
    "has_open_complaint",
    "open_complaints",
    "minutes_since_complaint",
    "last_complaint_severity",
    "complaints_90d",
    "consent.*",
    "contacts_today",
    "contacts_7d",
    "contacts_today.*",
    "hour_of_day",
    "day_of_week",
    "channel",
    "placement",
    "context.*",
    "category_interest.*",
    "customer_value",
    "is_anonymous",
}

MINIMAL = """\
strategy_version: "7"
channels:
  web: {cost: 0.001}
  email: {cost: 0.005, quiet_hours: "21:00-08:00"}
  outbound_call: {cost: 4.5}
offers:
  - id: card
    category: credit_card
    value: 100
    channels: [web, email, outbound_call]
    eligibility: age >= 18
    channel_priors: {email: 0.02, outbound_call: 0.15}
  - {id: tip, category: service, value: 1, channels: [web]}
"""


@pytest.fixture(scope="module")
def example() -> Strategy:
    return load_strategy(EXAMPLE, known_features=KNOWN)


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MINIMAL)
    data.update(changes)
    return data


# --- the example strategy --------------------------------------------------------------------


def test_example_strategy_loads_with_the_catalogue(example: Strategy) -> None:
    assert example.version
    assert set(example.channels) == set(CHANNELS)
    assert len(example.offers) >= 20
    categories = example.categories
    assert {"credit_card", "loan", "savings", "insurance", "upsell", "cross_sell"} <= categories
    assert {"retention", "service_recovery"} <= categories
    kinds = {rule.kind for rule in example.rules}
    assert kinds == {"suppress", "contact_cap", "consent"}
    assert example.exploration.policy == "epsilon_greedy"
    assert example.control_group.share == pytest.approx(0.10)
    assert example.timezone == "Europe/Amsterdam"
    assert example.features
    assert all(_known(name) for name in example.features)


def _known(name: str) -> bool:
    families = [k[:-1] for k in KNOWN if k.endswith(".*")]
    return name in KNOWN or any(name.startswith(f) for f in families)


def test_example_costs_are_realistic(example: Strategy) -> None:
    cost = {name: ch.cost for name, ch in example.channels.items()}
    assert max(cost["web"], cost["push"], cost["email"]) < 0.01
    assert 0.02 <= cost["sms"] <= 0.1
    assert 1 <= cost["call_center"] <= 3
    assert 4 <= cost["outbound_call"] <= 5


def test_example_seed_case_no_credit_after_failed_check(example: Strategy) -> None:
    rule = example.rule("no_credit_after_failed_check")
    assert rule.kind == "suppress"
    assert rule.when is not None
    failed = {"credit_check_status": "failed"}
    for offer in example.offers:
        if offer.category in ("credit_card", "loan"):
            assert rule.targets(offer)
    assert rule.when(failed) is True
    assert rule.when({"credit_check_status": "passed"}) is False
    assert rule.when.explain(failed) == (
        'credit_check_status == "failed" (credit_check_status = "failed")'
    )


def test_example_seed_case_no_upsell_after_complaint(example: Strategy) -> None:
    rule = example.rule("no_upsell_after_complaint")
    assert rule.kind == "suppress"
    assert rule.after == "complaint_opened"
    assert rule.within_ms == 30 * 60_000
    upsells = [o for o in example.offers if o.category == "upsell"]
    assert upsells
    assert all(rule.targets(o) for o in upsells)
    assert not any(rule.targets(o) for o in example.offers_in_category("service_recovery"))


def test_example_seed_case_outbound_call_only_when_worth_its_cost(example: Strategy) -> None:
    winback = example.offer("winback_call")
    call = example.net_value(winback, "outbound_call", winback.prior_for("outbound_call"))
    email = example.net_value(winback, "email", winback.prior_for("email"))
    assert call > email
    # the same offer at a low propensity: the email wins, the call is not worth 4.50
    assert example.net_value(winback, "outbound_call", 0.03) < email
    # and the rule is exactly "EV difference beats the cost difference"
    cost_gap = example.channels["outbound_call"].cost - example.channels["email"].cost
    for p_call in (0.02, 0.05, 0.1, 0.2):
        ev_gap = (p_call - winback.prior_for("email")) * winback.value
        assert (example.net_value(winback, "outbound_call", p_call) > email) == (ev_gap > cost_gap)


def test_example_triggers(example: Strategy) -> None:
    cart = example.trigger("cart_abandonment")
    assert (cart.on, cart.unless, cart.fire_after_ms) == (
        "add_to_cart",
        "purchase_complete",
        30 * 60_000,
    )
    assert example.triggers_on("add_to_cart") == (cart,)
    assert example.triggers_cancelled_by("purchase_complete") == (cart,)
    recovery = example.trigger("service_recovery")
    assert recovery.on == "complaint_opened"
    assert {o.id for o in example.trigger_offers(recovery, "call_center")} == {
        "complaint_callback",
        "complaint_apology",
    }
    large = example.trigger("large_purchase_cross_sell")
    assert large.when is not None
    assert large.when({"last_purchase_amount": 1500}) is True
    assert large.fire_after_ms == 2 * 3_600_000
    assert example.triggers_on("salary_payment")
    assert example.events <= set(EVENT_TYPES) | {"dismiss", "unsubscribe"}


def test_example_helpers(example: Strategy) -> None:
    gold = example.offer("gold_card")
    assert gold.prior_for("outbound_call") == pytest.approx(0.12)
    assert gold.prior_for("web") == pytest.approx(0.03)
    assert gold.caps.cooldown_ms == 14 * 86_400_000
    assert gold in example.offers_for_channel("web")
    assert gold not in example.offers_for_channel("push")
    assert example.offers_for_channel("fax") == ()
    assert [r.name for r in example.rules_of_kind("contact_cap")] == [
        "all_outbound_contacts",
        "phone_and_sms",
    ]
    all_outbound = example.rule("all_outbound_contacts")
    assert all_outbound.kind == "contact_cap"
    assert all_outbound.channels == {"push", "email", "sms", "outbound_call"}
    consent = example.rules_of_kind("consent")[0]
    assert consent.feature == "consent.marketing"
    assert consent.allows({}) is True  # missing: allow
    assert consent.allows({"consent.marketing": False}) is False
    recovery = example.offer("complaint_callback")
    assert example.lever(recovery) == pytest.approx(3.0)
    cards = example.offer("classic_card")
    assert example.context_weight(cards, {"category_interest.credit_card": 5}) == 1.5
    assert example.context_weight(cards, {}) == 1.0
    assert example.expires_after_ms(cards, "web") == 30 * 60_000
    assert example.attribution.window_ms("mortgage_advice", "email") == 14 * 86_400_000
    assert example.attribution.window_ms("gold_card", "web") == 30 * 60_000
    assert example.attribution.classify("convert") == "positive"
    assert example.attribution.classify("unsubscribe") == "negative"
    assert example.attribution.classify("bounce") == "neutral"
    failed = gold.failed_gate({"age": 17, "tenure_days": 400})
    assert failed is not None
    assert failed[0] == "eligibility"
    assert gold.failed_gate({"age": 30, "tenure_days": 400, "segment": "gold"}) is None


def test_priority_formula() -> None:
    s = parse_strategy(
        minimal(
            arbitration={
                "propensity_weight": 0.5,
                "value_weight": 2,
                "category_levers": {"credit_card": 2},
                "context_weights": [
                    {"name": "mobile", "when": 'context.device == "mobile"', "weight": 1.5}
                ],
            }
        )
    )
    card = s.offer("card")
    got = s.priority(card, "email", 0.04, {"context.device": "mobile"})
    assert got == pytest.approx(0.04**0.5 * 100**2 * 2 * 1.5 - 0.005)
    assert s.arbitration.min_score == 0.0


def test_offers_rules_and_strategies_are_hashable(example: Strategy) -> None:
    assert len({*example.offers}) == len(example.offers)
    assert hash(example) == hash(load_strategy(EXAMPLE))
    assert example == load_strategy(EXAMPLE)


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("30s", 30_000),
        ("15m", 900_000),
        ("2h", 7_200_000),
        ("3d", 259_200_000),
        ("1w", 604_800_000),
        ("1h30m", 5_400_000),
        (" 1h 30m ", 5_400_000),
        ("0s", 0),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (30, "a duration needs a unit: write e.g. '30s', '30m' or '30d'"),
        ("30", "invalid duration '30'"),
        ("30 minutes", "invalid duration '30 minutes'"),
        ("1.5h", "invalid duration '1.5h'"),
        ("-5m", "invalid duration '-5m'"),
        ("5M", "invalid duration '5M'"),
        (None, "expected a duration such as 30m, 2h or 3d, got None"),
        (True, "expected a duration"),
    ],
)
def test_bad_durations(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@given(st.integers(0, 10**12))
def test_format_duration_round_trips(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms


# --- time helpers ---------------------------------------------------------------------------


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_quiet_hours_in_the_strategy_timezone() -> None:
    s = parse_strategy(minimal(timezone="Europe/Amsterdam"))
    # 20:30 UTC is 22:30 in Amsterdam (summer time): quiet; 05:30 UTC is 07:30: quiet
    assert s.in_quiet_hours("email", _ms("2025-07-01T20:30:00+00:00"))
    assert s.in_quiet_hours("email", _ms("2025-07-01T05:30:00+00:00"))
    assert not s.in_quiet_hours("email", _ms("2025-07-01T06:30:00+00:00"))
    assert not s.in_quiet_hours("web", _ms("2025-07-01T22:30:00+00:00"))
    end = s.quiet_hours_end("email", _ms("2025-07-01T20:30:00+00:00"))
    assert end == _ms("2025-07-02T08:00:00+02:00")
    assert s.quiet_hours_end("email", _ms("2025-07-01T12:00:00+00:00")) is None
    # quiet until 08:00 local also in winter (UTC+1)
    assert s.quiet_hours_end("email", _ms("2025-01-15T06:00:00+00:00")) == _ms(
        "2025-01-15T08:00:00+01:00"
    )
    assert s.local_day_start(_ms("2025-07-01T23:30:00+00:00")) == _ms("2025-07-02T00:00:00+02:00")


def test_default_timezone_is_utc() -> None:
    s = parse_strategy(minimal())
    assert s.timezone == "UTC"
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert s.local_day_start(int(now.timestamp() * 1000)) == _ms("2025-03-01T00:00:00+00:00")


# --- loading details ------------------------------------------------------------------------


def test_fingerprint_ignores_comments_and_layout_but_not_content(tmp_path: Path) -> None:
    base = parse_strategy(MINIMAL)
    reformatted = yaml.safe_dump(yaml.safe_load(MINIMAL), default_flow_style=False)
    assert parse_strategy("# a comment\n" + reformatted).fingerprint == base.fingerprint
    changed = parse_strategy(MINIMAL.replace("value: 100", "value: 101"))
    assert changed.fingerprint != base.fingerprint
    duration = parse_strategy(minimal(attribution={"default": "1d"}))
    same = parse_strategy(minimal(attribution={"default": "24h"}))
    assert duration.fingerprint == same.fingerprint
    file = tmp_path / "s.yaml"
    file.write_text(MINIMAL)
    assert load_strategy(file).fingerprint == base.fingerprint


def test_to_dict_is_plain_json(example: Strategy) -> None:
    data = example.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["offers"][0]["eligibility"] == example.offers[0].eligibility.source  # type: ignore[union-attr]
    assert "source" not in data


def test_strategy_pickles(example: Strategy) -> None:
    clone = pickle.loads(pickle.dumps(example))
    assert clone.fingerprint == example.fingerprint
    assert clone.offer("gold_card").eligibility({"age": 20, "tenure_days": 200}) is True


def test_yaml_on_yes_no_stay_text() -> None:
    s = parse_strategy(
        MINIMAL
        + "triggers:\n  - {name: t, on: login, channels: [email], offers: [card]}\n"
        + "rules:\n  - {name: r, kind: suppress, when: 'attr.opt == \"no\"'}\n"
    )
    assert s.trigger("t").on == "login"
    text = parse_strategy(MINIMAL.replace('"7"', "yes"))
    assert text.version == "yes"


def test_anchors_and_aliases_work() -> None:
    s = parse_strategy(
        MINIMAL
        + "rules:\n"
        + "  - {name: a, kind: suppress, categories: &credit [credit_card], when: 'true'}\n"
        + "  - {name: b, kind: suppress, categories: *credit, after: purchase, within: 1h}\n"
    )
    assert s.rule("b").categories == {"credit_card"}  # type: ignore[union-attr]


def test_disabled_items_are_validated_and_left_out() -> None:
    data = minimal(
        rules=[{"name": "off", "kind": "suppress", "when": "true", "enabled": False}],
        triggers=[
            {"name": "t", "on": "login", "channels": ["email"], "enabled": False},
        ],
    )
    data["offers"][1]["enabled"] = False
    s = parse_strategy(data)
    assert [o.id for o in s.offers] == ["card"]
    assert s.rules == ()
    assert s.triggers == ()
    data["rules"][0]["when"] = "age >"
    with pytest.raises(InvalidStrategyError, match="expected a value after '>'"):
        parse_strategy(data)


def test_plain_data_errors_have_paths_but_no_lines() -> None:
    data = minimal()
    data["offers"][0]["channels"] = ["web", "fax", "emial", "outbound_call"]
    with pytest.raises(InvalidStrategyError) as info:
        parse_strategy(data, source="api")
    assert str(info.value).splitlines() == [
        "api: 3 problems",
        "  api offers[0] (card).channels[1]: unknown channel 'fax'; expected one of: "
        "web, push, email, sms, call_center, outbound_call",
        "  api offers[0] (card).channels[2]: unknown channel 'emial' (did you mean 'email'?)",
        # a prior for a channel the offer does not list
        "  api offers[0] (card).channel_priors.email: the offer is not allowed on email",
    ]
    data["offers"][0]["channel_priors"] = {"emial": 0.1}
    with pytest.raises(InvalidStrategyError) as info:
        parse_strategy(data, source="api")
    assert len(info.value.issues) == 2  # the typo is reported once, where it is


def test_features_are_only_checked_when_a_catalogue_is_given() -> None:
    data = minimal()
    data["offers"][0]["eligibility"] = "shoe_size > 40"
    assert parse_strategy(data).offer("card").eligibility is not None
    with pytest.raises(InvalidStrategyError, match="unknown feature 'shoe_size'"):
        parse_strategy(data, known_features=KNOWN)
    # catalogue families may be written "attr.", "attr.*" or "attr.<name>"
    data["offers"][0]["eligibility"] = "attr.shoe_size > 40 and context.page == 'x'"
    for families in (["attr.", "context."], ["attr.*", "context.*"], ["attr.<n>", "context.<k>"]):
        parse_strategy(data, known_features=families)


def test_several_problems_are_all_reported_one_per_line() -> None:
    data = minimal(timezone="Mars/Base", exploration={"policy": "greedy", "epsilon": 2})
    data["offers"][0]["value"] = "lots"
    with pytest.raises(InvalidStrategyError) as info:
        parse_strategy(data, source="s.yaml")
    lines = str(info.value).splitlines()
    assert lines[0] == "s.yaml: 3 problems"
    assert len(info.value.issues) == 3
    assert {line.strip() for line in lines[1:]} == {str(i) for i in info.value.issues}


def test_file_errors() -> None:
    with pytest.raises(StrategyError, match=r"strategy file not found: /nonexistent/x\.yaml"):
        load_strategy("/nonexistent/x.yaml")
    with pytest.raises(InvalidStrategyError, match="the strategy is empty"):
        parse_strategy("# nothing\n", source="empty.yaml")
    with pytest.raises(InvalidStrategyError, match=r"^top.yaml:1: expected a mapping"):
        parse_strategy("- a\n- b\n", source="top.yaml")


def _expectations(path: Path) -> list[str]:
    prefix = "# expect: "
    lines = path.read_text().splitlines()
    return [f"{path}{line[len(prefix) :]}" for line in lines if line.startswith(prefix)]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_strategy_reports_every_problem_located(path: Path) -> None:
    """Each fixture lists its expected problems (`# expect: :LINE path: message`), exactly."""
    expected = _expectations(path)
    assert expected, "a fixture must say what it expects"
    with pytest.raises(InvalidStrategyError) as info:
        load_strategy(path, known_features=KNOWN)
    assert [str(issue) for issue in info.value.issues] == expected


@pytest.mark.parametrize("zone", ["Europe/Amsterdam", "America/Sao_Paulo", "Australia/Lord_Howe"])
def test_local_day_start_is_local_midnight_across_dst_changes(zone: str) -> None:
    tz = ZoneInfo(zone)
    # every 20 minutes through the DST changes of Oct 2016 (Sao Paulo skipped its midnight)
    for now_ms in range(1_475_000_000_000, 1_478_000_000_000, 1_200_000):
        local = datetime.fromtimestamp(now_ms / 1000, tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        assert local_day_start(local) == int(midnight.timestamp() * 1000)
