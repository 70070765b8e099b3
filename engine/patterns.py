"""The risk patterns of DESIGN.md by name: the vocabulary shared by the simulator's
labels, the rules' `tags` and the backtest's precision and recall."""

PATTERNS: dict[str, int] = {
    "purpose_violation": 1,
    "entrusted_payment_mismatch": 2,
    "round_trip": 3,
    "splitting": 4,
    "fan_out": 4,
    "pass_through": 5,
    "large_outflow": 6,
    "payment_anomaly": 6,  # a burst of the borrower's own money to new payees, unlike its business
    "cash_out": 7,
    "idle_funds": 8,
    "missed_repayment": 9,
    "loan_refinancing": 9,
    "headcount_drop": 10,
    "inventory_shortfall": 10,
    "electricity_collapse": 10,
    "executive_absent": 10,
    "sensor_silent": 10,
    "guarantee_circle": 11,
    "guarantee_chain": 11,
    "guarantor_overexposed": 11,
    "contagion": 11,
    "hidden_related_party": 12,
}
