"""The independent audit of decisions and the lift statistics (rtim.sim.audit)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from rtim.core.strategy import load_strategy
from rtim.paths import contract_dir
from rtim.sim.audit import Auditor, RewardTracker, newcombe_interval, wilson_interval

STRATEGY = load_strategy(contract_dir("strategies") / "example.yaml")
T = 1_763_805_600_000  # 2025-11-22T10:00:00Z = 11:00 in Amsterdam (no quiet hours)
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
CUSTOMER = "c0000001"
_ids = itertools.count()


def event(schema: str, ts: int, **fields: Any) -> tuple[str, dict[str, Any]]:
    return schema, {"event_id": f"e{next(_ids)}", "customer_id": CUSTOMER, "ts": ts, **fields}


def attributes(ts: int, **values: str) -> tuple[str, dict[str, Any]]:
    return event("ProfileEvent", ts, type="attributes", channel=None, granted=None,
                 attributes=values, linked_id=None)  # fmt: skip


def consent(ts: int, channel: str, granted: bool = True) -> tuple[str, dict[str, Any]]:
    return event("ProfileEvent", ts, type="consent", channel=channel, granted=granted,
                 attributes=None, linked_id=None)  # fmt: skip


def credit_check(ts: int, status: str) -> tuple[str, dict[str, Any]]:
    return event("TransactionEvent", ts, transaction_id="t", type="credit_check", amount=0.0,
                 currency="EUR", status=status, product_id=None, category="loan")  # fmt: skip


def complaint(ts: int, status: str, severity: str = "low", cid: str = "k1") -> tuple[str, dict]:
    return event("ComplaintEvent", ts, complaint_id=cid, category="fees", severity=severity,
                 status=status, channel=None)  # fmt: skip


def decision(ts: int, channel: str, *offers: str, decision_id: str | None = None) -> dict:
    return {
        "decision_id": decision_id or f"d{next(_ids)}",
        "customer_id": CUSTOMER,
        "ts": ts,
        "channel": channel,
        "trigger": {"type": "request", "id": "r", "name": None},
        "actions": [
            {
                "offer_id": o,
                "category": STRATEGY.offer(o).category,
                "rank": i + 1,
                "score": 1.0,
                "propensity": 1.0,
                "payload": {},
            }
            for i, o in enumerate(offers)
        ],
        "control_group": False,
        "reasons": [],
    }


def auditor(*events: tuple[str, dict[str, Any]]) -> Auditor:
    """An auditor that knows a gold, 40-year-old customer of 400 days with email consent."""
    audit = Auditor(STRATEGY)
    for schema, record in (
        attributes(T - 400 * DAY, age="40", segment="gold", has_children="false"),
        consent(T - 400 * DAY + 1, "email"),
        *events,
    ):
        audit.observe(schema, record)
    return audit


def kinds(audit: Auditor, d: dict) -> set[str]:
    return {v.kind for v in audit.check(d)}


def test_a_clean_decision_has_no_violation() -> None:
    audit = auditor()
    assert kinds(audit, decision(T, "web", "gold_card")) == set()
    assert kinds(audit, decision(T, "email", "gold_card")) == set()
    assert kinds(audit, decision(T, "web")) == set()  # deliberately no action
    assert audit.summary()["total"] == 0
    assert audit.decisions_checked == 3


def test_credit_offer_after_the_latest_check_failed() -> None:
    audit = auditor(credit_check(T - HOUR, "failed"), credit_check(T + MIN, "passed"))
    assert "no_credit_after_failed_check" in kinds(audit, decision(T, "web", "gold_card"))
    # the check after the decision does not count; a later decision sees it passed
    assert kinds(audit, decision(T + 2 * MIN, "web", "gold_card")) == set()
    # a failed check also fails the gates that read it
    assert "car_loan.eligibility" in kinds(audit, decision(T, "web", "car_loan"))
    assert (
        kinds(audit, decision(T, "web", "savings_boost")) & {"no_credit_after_failed_check"}
        == set()
    )


def test_sales_offer_within_the_window_after_a_complaint() -> None:
    audit = auditor(complaint(T - 10 * MIN, "opened"), complaint(T + 5 * MIN, "resolved"))
    found = audit.check(decision(T, "web", "premium_account"))
    assert {v.kind for v in found} == {"no_upsell_after_complaint"}
    assert "10 min after complaint_opened" in found[0].detail
    assert kinds(audit, decision(T + 15 * MIN, "web", "premium_account")) == {
        "no_upsell_after_complaint"
    }  # resolved, but the rule counts from the opening
    assert kinds(audit, decision(T + 25 * MIN, "web", "premium_account")) == set()
    assert kinds(audit, decision(T, "web", "help_center_tip")) == set()  # not a sales offer


def test_sales_offer_while_a_severe_complaint_is_open() -> None:
    audit = auditor(
        complaint(T - 3 * HOUR, "opened", "high"), complaint(T + HOUR, "resolved", "high")
    )
    assert kinds(audit, decision(T, "web", "premium_account")) == {
        "no_sales_during_severe_complaint"
    }
    assert kinds(audit, decision(T + 2 * HOUR, "web", "premium_account")) == set()
    features = audit.features_at(CUSTOMER, T)
    assert features["has_open_complaint"] is True
    assert features["minutes_since_complaint"] == 180.0
    assert audit.features_at(CUSTOMER, T + HOUR)["has_open_complaint"] is False


def test_outbound_contact_without_consent_or_after_unsubscribe() -> None:
    audit = auditor()
    assert kinds(audit, decision(T, "sms", "cart_reminder")) == {"no_consent"}
    audit.observe_outcome({"customer_id": CUSTOMER, "ts": T + HOUR, "channel": "email",
                           "offer_id": "gold_card", "type": "unsubscribe"})  # fmt: skip
    found = kinds(audit, decision(T + 2 * HOUR, "email", "travel_insurance"))
    assert found == {"after_unsubscribe", "calm_after_unsubscribe"}


def test_an_outcome_counts_from_when_it_was_reported() -> None:
    audit = auditor()
    late = {"customer_id": CUSTOMER, "ts": T + HOUR, "channel": "email",
            "offer_id": "gold_card", "type": "unsubscribe"}  # fmt: skip
    audit.observe_outcome(late, reported_ts=T + 3 * HOUR)  # reported two hours after the fact
    assert kinds(audit, decision(T + 2 * HOUR, "email", "travel_insurance")) == set()
    assert kinds(audit, decision(T + 4 * HOUR, "email", "travel_insurance")) >= {
        "after_unsubscribe"
    }


def test_consent_withdrawn_by_a_consent_event() -> None:
    audit = auditor(consent(T - HOUR, "email", granted=False))
    assert kinds(audit, decision(T, "email", "complaint_apology")) >= {"no_consent"}


def test_contacts_beyond_the_channel_and_global_caps() -> None:
    audit = auditor(consent(T - DAY, "push"), consent(T - DAY, "sms"))
    assert kinds(audit, decision(T, "email", "travel_insurance")) == set()
    assert kinds(audit, decision(T + HOUR, "email", "gadget_insurance")) >= {"channel_cap_day"}
    assert kinds(audit, decision(T + 2 * HOUR, "push", "classic_card")) == {
        "all_outbound_contacts"
    }  # 2 contacts today already, over all outbound channels
    # the next local day: the daily caps are fresh, the weekly ones count on
    assert "channel_cap_day" not in kinds(audit, decision(T + DAY, "email", "travel_insurance"))


def test_contacts_in_quiet_hours() -> None:
    audit = auditor(consent(T - DAY, "push"))
    late = T + 12 * HOUR  # 23:00 in Amsterdam
    assert kinds(audit, decision(late, "push", "classic_card")) == {"quiet_hours"}


def test_gates_and_purpose_consent_are_checked_when_their_features_are_known() -> None:
    audit = auditor(consent(T - DAY, "marketing", granted=False))
    assert kinds(audit, decision(T, "web", "student_card")) == {
        "student_card.eligibility",
        "marketing_objection",
    }
    assert kinds(audit, decision(T, "web", "help_center_tip")) == set()


def test_each_decision_is_checked_once_and_examples_name_it() -> None:
    audit = auditor(credit_check(T - HOUR, "failed"))
    d = decision(T, "web", "classic_card", decision_id="d-bad")
    assert audit.check(d)
    assert audit.check(d) == []
    summary = audit.summary()
    assert summary["by_kind"] == {"no_credit_after_failed_check": 1}
    assert summary["examples"] == {"no_credit_after_failed_check": ["d-bad"]}
    assert summary["unchecked_rules"] == []


def test_context_for_the_response_model() -> None:
    audit = auditor(
        event("ClickstreamEvent", T - MIN, session_id="s", type="add_to_cart", page=None,
              product_id="p1", category="home", price=10.0, quantity=1, anonymous_id=None),
        complaint(T - HOUR, "opened"),
    )  # fmt: skip
    audit.check(decision(T - 30 * MIN, "email", "complaint_apology"))
    ctx = audit.context_at(CUSTOMER, T)
    assert ctx == {"recent_contacts": 1, "open_complaint": True, "cart": True}
    assert audit.context_at(CUSTOMER, T - 2 * MIN)["cart"] is False


# --- statistics --------------------------------------------------------------------------------


def test_wilson_interval_known_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857-872, table I
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_newcombe_interval_known_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, method 10
    result = newcombe_interval(56, 70, 48, 80)
    assert result is not None
    d, low, high = result
    assert d == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert newcombe_interval(9, 10, 3, 10) == pytest.approx((0.6, 0.1705, 0.8090), abs=1e-4)
    assert newcombe_interval(1, 0, 1, 10) is None


def test_reward_tracker_rates_lift_and_learning_curve() -> None:
    tracker = RewardTracker(start_ms=0, bucket_ms=100, buckets=2)
    for i in range(100):
        tracker.add(ts=i * 2, control=False, reward=int(i % 10 == 0), expected=0.1)
    for i in range(50):
        tracker.add(ts=150, control=True, reward=int(i % 25 == 0), expected=0.04)
    s = tracker.summary()
    assert s["policy_reward_rate"] == 0.1
    assert s["control_reward_rate"] == 0.04
    assert s["lift"] == pytest.approx(0.06)
    assert s["lift_ci95"] == pytest.approx(list(newcombe_interval(10, 100, 2, 50)[1:]))  # type: ignore[index]
    assert s["expected_lift"] == pytest.approx(0.06)
    first, second = s["series"]
    assert (first["policy_n"], second["policy_n"], second["control_n"]) == (50, 50, 50)
    assert first["control_rate"] is None
    assert first["t_ms"] == 0
    assert second["t_ms"] == 100


def test_welch_interval_of_a_difference_of_means() -> None:
    from rtim.sim.audit import welch_interval

    # two groups of 100: values 0/10 with means 3 and 1
    a = [10.0] * 30 + [0.0] * 70
    b = [10.0] * 10 + [0.0] * 90
    got = welch_interval((sum(a), sum(x * x for x in a), 100), (sum(b), sum(x * x for x in b), 100))
    assert got is not None
    d, low, high = got
    assert d == pytest.approx(2.0)
    se = (0.3 * 0.7 * 100 / 99 * 100 / 100 + 0.1 * 0.9 * 100 / 99) ** 0.5  # var/n of each mean
    assert high - d == pytest.approx(1.959963984540054 * se, rel=1e-3)
    assert low < d < high
    assert welch_interval((1.0, 1.0, 1), (1.0, 1.0, 5)) is None
