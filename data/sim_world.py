"""The simulated debtors: who they are and how they pay, with and without reminders.

Every debtor draws a *kind* with its own payment behaviour, a segment, a country, a billing
pattern, a responsiveness per channel and maybe an opt-out or a sudden change of behaviour.
:func:`daily_hazard` gives the chance that an open invoice is paid on a day, given the kind, the
days to or past the due date and the reminders so far (each one a boost that fades and tires).
docs/simulator.md explains every number.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

KINDS = ("punctual", "forgetful", "slow_but_sure", "cash_strapped", "disputing", "defaulting")
KIND_SHARES = (0.35, 0.20, 0.20, 0.12, 0.06, 0.07)
#: A sudden change of behaviour moves a debtor to a worse kind.
WORSE = {"punctual": "cash_strapped", "forgetful": "slow_but_sure",
         "slow_but_sure": "defaulting", "cash_strapped": "defaulting",
         "disputing": "defaulting", "defaulting": "defaulting"}
COUNTRIES = (("NL", 0.40), ("DE", 0.20), ("BE", 0.15), ("FR", 0.15), ("GB", 0.10))
CHANNEL_BOOST = {"email": 0.10, "sms": 0.14, "letter": 0.12, "phone": 0.28}
#: How much each kind reacts to a reminder (forgetful debtors just needed one).
KIND_RESPONSE = {"punctual": 1.0, "forgetful": 3.0, "slow_but_sure": 0.8, "cash_strapped": 0.6,
                 "disputing": 0.5, "defaulting": 0.15}
PLAN_ACCEPT = {"punctual": 0.1, "forgetful": 0.2, "slow_but_sure": 0.4, "cash_strapped": 0.75,
               "disputing": 0.1, "defaulting": 0.15}
COLLECTION_RECOVERY = {"defaulting": 0.40, "cash_strapped": 0.65}
DEFAULT_RECOVERY = 0.85
NEVER_PAY = {"defaulting": 0.45, "cash_strapped": 0.05}
DISPUTE_RATE = {"disputing": 0.30}
OTHER_DISPUTE_RATE = 0.015
DECAY_DAYS = 6.0
FATIGUE = 0.7
PARTIAL_KINDS = {"cash_strapped": 0.7, "defaulting": 0.3}


@dataclass
class Debtor:
    """A simulated debtor's hidden traits (``truth.csv`` holds them)."""

    debtor_id: str
    kind: str
    segment: str
    country: str
    created_on: dt.date
    subscription: bool
    billing_day: int
    mean_amount: float
    term_days: int
    pace: float
    response: dict[str, float]
    preferred: str
    opted_out: tuple[str, ...]
    changed_on: dt.date | None
    kind_after: str | None

    def kind_on(self, day: dt.date) -> str:
        """The kind in force on ``day`` (after a sudden change, the worse one)."""
        if self.changed_on is not None and day >= self.changed_on:
            return self.kind_after
        return self.kind


def draw_debtor(i: int, rng: np.random.Generator, start: dt.date, days: int) -> Debtor:
    """One debtor's traits."""
    kind = KINDS[rng.choice(len(KINDS), p=KIND_SHARES)]
    segment = "b2b" if rng.random() < 0.4 else "b2c"
    country = COUNTRIES[rng.choice(len(COUNTRIES), p=[w for _, w in COUNTRIES])][0]
    subscription = rng.random() < (0.75 if segment == "b2c" else 0.3)
    if segment == "b2b":
        mean_amount = float(rng.lognormal(math.log(700), 0.7))
        term = int(rng.choice([14, 30, 30, 30, 60]))
    else:
        mean_amount = float(rng.lognormal(math.log(45), 0.5))
        term = int(rng.choice([14, 14, 30]))
    channels = ["email", "sms", "letter", "phone"]
    preferred = str(rng.choice(channels, p=[0.45, 0.25, 0.2, 0.1]))
    response = {c: float(rng.uniform(0.25, 0.6)) for c in channels}
    response[preferred] = float(rng.uniform(0.9, 1.3))
    response["phone"] = max(response["phone"], 0.8)  # a call is hard to ignore
    opted: tuple[str, ...] = ()
    u = rng.random()
    if u < 0.05:
        opted = ("sms",)
    elif u < 0.08:
        opted = ("phone",)
    elif u < 0.10:
        opted = ("sms", "phone")
    changed_on, kind_after = None, None
    if rng.random() < 0.05 and WORSE[kind] != kind:
        changed_on = start + dt.timedelta(days=int(rng.integers(days // 3, 5 * days // 6)))
        kind_after = WORSE[kind]
    return Debtor(
        debtor_id=f"D{i:05d}", kind=kind, segment=segment, country=country,
        created_on=start - dt.timedelta(days=int(rng.integers(0, 1500))),
        subscription=subscription, billing_day=int(rng.integers(1, 29)),
        mean_amount=mean_amount, term_days=term, pace=float(rng.lognormal(0, 0.25)),
        response=response, preferred=preferred, opted_out=opted,
        changed_on=changed_on, kind_after=kind_after,
    )


def invoice_days(debtor: Debtor, rng: np.random.Generator, start: dt.date, days: int):
    """Issue dates and amounts: a monthly subscription, or irregular orders."""
    out = []
    if debtor.subscription:
        amount = round(debtor.mean_amount, 2)
        year, month = start.year, start.month
        while True:
            day = dt.date(year, month, debtor.billing_day)
            if day >= start + dt.timedelta(days=days):
                break
            if day >= start:
                out.append((day, amount))
            month += 1
            if month > 12:
                year, month = year + 1, 1
    else:
        rate = 1.2 / 30 if debtor.segment == "b2b" else 0.6 / 30
        t = float(rng.exponential(1 / rate))
        while t < days:
            amount = round(float(debtor.mean_amount * rng.lognormal(0, 0.4)), 2)
            out.append((start + dt.timedelta(days=int(t)), max(amount, 1.0)))
            t += float(rng.exponential(1 / rate))
    return out


def base_hazard(kind: str, days_past_due: int) -> float:
    """Daily chance of paying without any reminder, by kind and days past due."""
    d = days_past_due
    if kind == "punctual":
        return 0.01 if d < -10 else (0.25 if d <= 0 else 0.15)
    if kind == "forgetful":
        return 0.004 if d < -7 else (0.06 if d <= 0 else 0.008)
    if kind == "slow_but_sure":
        return 0.003 if d < 8 else 0.09
    if kind == "cash_strapped":
        return 0.004 if d < 0 else 0.02
    if kind == "disputing":
        return 0.004 if d < 3 else 0.05
    return 0.001 if d < 0 else 0.004  # defaulting


def reminder_boost(debtor: Debtor, kind: str, contacts: list[tuple[int, str]], day: int) -> float:
    """Extra daily chance of paying from earlier contacts: fading, tiring with repetition.

    ``contacts`` are (day index, channel) of this invoice's reminders, oldest first.
    """
    total = 0.0
    for k, (sent, channel) in enumerate(contacts):
        age = day - sent
        if age < 1 or channel not in CHANNEL_BOOST:
            continue
        total += (CHANNEL_BOOST[channel] * debtor.response[channel] * KIND_RESPONSE[kind]
                  * FATIGUE ** k * math.exp(-(age - 1) / DECAY_DAYS))
    return total


def daily_hazard(debtor: Debtor, kind: str, days_past_due: int, contacts, day: int) -> float:
    """Chance that an open invoice is paid on ``day`` (capped below 1)."""
    h = base_hazard(kind, days_past_due) * debtor.pace
    return min(h + reminder_boost(debtor, kind, contacts, day), 0.95)
