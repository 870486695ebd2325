"""Deterministic synthetic churn data: customers observed monthly, churn in the next 30 days.

``customers()`` is the training history (12 months); ``scoring_batch()`` is a later month
of active customers to score, in which prices rose and the contract mix moved, so
monitoring has something real to find.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["card", "bank-transfer", "electronic-check", "mailed-check"]
REGIONS = ["north", "south", "east", "west"]


def _frame(rng: np.random.Generator, n: int, start: str, months: int, *, price_shift: float = 0.0,
           contract_p=(0.55, 0.25, 0.20), id_offset: int = 0) -> pd.DataFrame:
    ts = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.integers(0, months * 30 * 24, n), unit="h")
    contract = rng.choice(CONTRACTS, n, p=list(contract_p))
    tenure = np.clip(rng.gamma(2.0, 12.0, n), 1, 72).round()
    monthly = np.clip(rng.normal(65 + price_shift, 20, n), 18, 130).round(2)
    tickets = rng.poisson(np.where(contract == "month-to-month", 1.6, 0.6))
    last_login = np.clip(rng.exponential(9, n), 0, 120).round()
    payment = rng.choice(PAYMENTS, n, p=[0.35, 0.25, 0.3, 0.1])
    logit = (-1.1 + 1.3 * (contract == "month-to-month") - 0.9 * (contract == "two-year")
             - 0.035 * tenure + 0.018 * (monthly - 65) + 0.35 * tickets + 0.045 * last_login
             + 0.45 * (payment == "electronic-check"))
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    total = (monthly * tenure * rng.normal(1, 0.03, n)).round(2)
    total[rng.random(n) < 0.01] = np.nan  # billing gaps, as in real exports
    return pd.DataFrame({
        "customer_id": [f"C{id_offset + i:06d}" for i in range(n)],
        "event_ts": ts,
        "region": rng.choice(REGIONS, n),
        "contract": contract,
        "payment_method": payment,
        "tenure_months": tenure.astype("int64"),
        "monthly_charges": monthly,
        "total_charges": total,
        "support_tickets": tickets.astype("int64"),
        "days_since_login": last_login.astype("int64"),
        "churned": churned,
    }).sort_values("event_ts", ignore_index=True)


def customers(rows: int = 20_000, seed: int = 7) -> pd.DataFrame:
    """Twelve months of labelled customer observations."""
    return _frame(np.random.default_rng(seed), rows, "2025-01-01", 12)


def scoring_batch(rows: int = 5_000, seed: int = 11) -> pd.DataFrame:
    """One later month to score: prices up ~15, more month-to-month contracts; no labels."""
    frame = _frame(np.random.default_rng(seed), rows, "2026-02-01", 1, price_shift=15.0,
                   contract_p=(0.7, 0.18, 0.12), id_offset=rows * 10)
    return frame.drop(columns=["churned"])
