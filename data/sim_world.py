"""The simulated debtors: who they are, what they are billed, and how they pay.

Every debtor draws a *kind* with its own payment behaviour (:data:`KINDS`), a segment, a
country, a billing pattern, a responsiveness per channel, maybe an opt-out, a sudden change of
behaviour or an end of the relationship. :func:`daily_hazard` is the chance that an open
invoice is paid on a day, given the kind, the days to or past the due date and the reminders
about it so far: each contact gives a boost that fades and tires with repetition.

Nothing here depends on the dunning policy: debtor traits and invoices come from the debtor's
*trait* stream, and every random outcome of an invoice is drawn at issue, in fixed roles, from
the debtor's *world* stream (:data:`U`), so two policies meet the very same company.
docs/simulator.md explains every number.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from paycadence.config import OPTABLE_CHANNELS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """Latent behaviour of one debtor kind (daily hazards are chances per day, before pace).

    Attributes
    ----------
    share : float
        Share of debtors of this kind.
    response : float
        Multiplier of every reminder's boost.
    partial : float
        Share of voluntary payments that pay only part (30-60 %) of what is open.
    plan_accept, plan_keep : float
        Chance to accept a payment-plan offer; chance to pay each instalment on time.
    never_pay : float
        Share of invoices never paid voluntarily (only collection recovers them).
    recovery : float
        Chance that a collection agency recovers an invoice handed over.
    dispute : float
        Share of invoices disputed.
    """

    share: float
    response: float
    partial: float
    plan_accept: float
    plan_keep: float
    never_pay: float
    recovery: float
    dispute: float


KINDS: dict[str, Kind] = {
    "punctual": Kind(0.35, 1.0, 0.00, 0.10, 0.97, 0.00, 0.95, 0.010),
    "forgetful": Kind(0.20, 4.0, 0.00, 0.15, 0.95, 0.00, 0.95, 0.010),
    "slow_but_sure": Kind(0.20, 0.7, 0.05, 0.45, 0.92, 0.00, 0.90, 0.015),
    "cash_strapped": Kind(0.12, 0.7, 0.70, 0.75, 0.85, 0.06, 0.60, 0.015),
    "disputing": Kind(0.06, 0.6, 0.05, 0.10, 0.90, 0.03, 0.80, 0.300),
    "defaulting": Kind(0.07, 0.15, 0.30, 0.20, 0.50, 0.50, 0.40, 0.030),
}
KIND_NAMES = tuple(KINDS)
#: Defaulting debtors that are insolvent: never pay voluntarily; collection rarely recovers.
INSOLVENT_SHARE, INSOLVENT_RECOVERY = 0.30, 0.15
#: A sudden change of behaviour moves a debtor to a worse kind.
WORSE = {"punctual": "cash_strapped", "forgetful": "slow_but_sure",
         "slow_but_sure": "defaulting", "cash_strapped": "defaulting",
         "disputing": "defaulting", "defaulting": "defaulting"}
CHANGE_SHARE = 0.05
CHURN_SHARE = 0.10
NEW_DEBTOR_SHARE = 0.20
COUNTRIES = ("NL", "DE", "BE", "FR", "GB")
COUNTRY_WEIGHTS = (0.40, 0.20, 0.15, 0.15, 0.10)
B2B_SHARE = 0.40
#: Preferred channel by segment (email, sms, letter, phone).
PREFERRED = {"b2b": (0.50, 0.05, 0.30, 0.15), "b2c": (0.45, 0.35, 0.10, 0.10)}
#: Responsiveness range of a channel that is not the debtor's preferred one.
NON_PREFERRED = {
    "b2b": {"email": (0.2, 0.6), "sms": (0.05, 0.3), "letter": (0.3, 0.7), "phone": (0.6, 1.0)},
    "b2c": {"email": (0.2, 0.6), "sms": (0.2, 0.6), "letter": (0.1, 0.4), "phone": (0.6, 1.0)},
}
#: Boost to the daily hazard the day after a contact, before responsiveness and fatigue.
CHANNEL_BOOST = {"email": 0.10, "sms": 0.14, "letter": 0.12, "phone": 0.30, "payment_plan": 0.08}
DECAY_DAYS = 6.0  # e-folding time of a contact's boost, days
FATIGUE = 0.7  # each earlier contact about the invoice scales the next boost by this
MAX_EFFECT_DAYS = 45  # a boost older than this is treated as gone
HAZARD_CAP = 0.95
#: After a dispute is resolved the debtor pays: extra hazard fading over RESOLVED_DAYS days.
RESOLVED_BOOST, RESOLVED_DAYS = 0.15, 10.0
DECAY = tuple(math.exp(-a / DECAY_DAYS) for a in range(MAX_EFFECT_DAYS + 1))


@dataclass(frozen=True)
class World:
    """The behavioural assumptions of a simulated company: who its debtors are and how
    reminders move them. :data:`PROJECT_WORLD` is the one every default uses (and
    docs/simulator.md explains); :data:`OTHER_WORLD` is a company built on different
    assumptions, to try a policy on a world it was not designed on.

    Attributes
    ----------
    kinds
        The six kinds (same names as :data:`KINDS`) with their shares and traits.
    channel_boost
        Boost of one contact per channel, the day after it is sent.
    decay_days, fatigue
        e-folding time of a boost; factor on each further contact's boost.
    preferred
        Chance of each preferred channel (email, sms, letter, phone) by segment.
    base_scale
        Factor on every kind's daily chance of paying without reminders.
    """

    name: str = "project"
    kinds: dict = field(default_factory=lambda: dict(KINDS))
    channel_boost: dict = field(default_factory=lambda: dict(CHANNEL_BOOST))
    decay_days: float = DECAY_DAYS
    fatigue: float = FATIGUE
    preferred: dict = field(default_factory=lambda: dict(PREFERRED))
    base_scale: float = 1.0

    def __post_init__(self):
        if set(self.kinds) != set(KINDS) or abs(sum(k.share for k in self.kinds.values())
                                                 - 1.0) > 1e-9:
            raise ValueError(f"world {self.name}: needs the kinds {', '.join(KINDS)} with "
                             "shares summing to 1")
        object.__setattr__(self, "decay", tuple(math.exp(-a / self.decay_days)
                                                for a in range(MAX_EFFECT_DAYS + 1)))


PROJECT_WORLD = World()
#: Another company: a worse book (more cash-strapped and defaulting debtors), letters and calls
#: work better than emails, reminders fade more slowly but tire faster, b2b debtors prefer
#: letters and b2c debtors sms, and everybody pays a little less by itself.
OTHER_WORLD = World(
    name="other",
    kinds={
        "punctual": replace(KINDS["punctual"], share=0.22),
        "forgetful": replace(KINDS["forgetful"], share=0.14, response=2.5),
        "slow_but_sure": replace(KINDS["slow_but_sure"], share=0.24, response=1.0),
        "cash_strapped": replace(KINDS["cash_strapped"], share=0.20, plan_accept=0.6),
        "disputing": replace(KINDS["disputing"], share=0.08),
        "defaulting": replace(KINDS["defaulting"], share=0.12, never_pay=0.4),
    },
    channel_boost={"email": 0.05, "sms": 0.10, "letter": 0.20, "phone": 0.25,
                   "payment_plan": 0.12},
    decay_days=10.0,
    fatigue=0.5,
    preferred={"b2b": (0.25, 0.05, 0.55, 0.15), "b2c": (0.25, 0.55, 0.10, 0.10)},
    base_scale=0.8,
)
WORLDS = {w.name: w for w in (PROJECT_WORLD, OTHER_WORLD)}

# Roles of the uniforms drawn for each invoice at issue (one row of U_WIDTH per invoice).
U_DISPUTE, U_DISPUTE_EARLY, U_DISPUTE_OFFSET, U_DISPUTE_DAYS, U_UNRESOLVED = 0, 1, 2, 3, 4
U_NEVER = 5
N_EVENTS = 8  # payment events per invoice (the last one always pays in full)
U_THRESHOLD, U_PARTIAL, U_FRACTION = 6, 14, 22
N_OFFERS, U_ACCEPT = 4, 30
N_INSTALMENTS, U_KEEP = 12, 34
U_PLAN_DELAY, U_RECOVER, U_RECOVER_DAYS = 46, 47, 48
U_WIDTH = 49


@dataclass
class Debtor:
    """A simulated debtor's hidden traits (``truth.csv`` holds them)."""

    index: int
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
    slow_lag: int
    insolvent: bool
    preferred: str
    response: dict[str, float]
    opted_out: tuple[str, ...]
    changed_on: dt.date | None
    kind_after: str | None
    left_on: dt.date | None
    world: World = PROJECT_WORLD

    def kind_on(self, day: dt.date) -> str:
        """The kind in force on ``day`` (after a sudden change, the worse one)."""
        if self.changed_on is not None and day >= self.changed_on:
            return self.kind_after
        return self.kind

    @property
    def currency(self) -> str:
        """ISO 4217 currency of the debtor's invoices."""
        return "GBP" if self.country == "GB" else "EUR"


def draw_debtor(i: int, rng: np.random.Generator, start: dt.date, days: int,
                world: World = PROJECT_WORLD) -> Debtor:
    """Draw one debtor's traits from its trait stream (the order of draws is fixed)."""
    kind = KIND_NAMES[rng.choice(len(KINDS), p=[world.kinds[k].share for k in KIND_NAMES])]
    segment = "b2b" if rng.random() < B2B_SHARE else "b2c"
    country = COUNTRIES[rng.choice(len(COUNTRIES), p=COUNTRY_WEIGHTS)]
    subscription = rng.random() < (0.30 if segment == "b2b" else 0.75)
    if segment == "b2b":
        mean_amount = float(rng.lognormal(math.log(900), 0.8))
        term = int(rng.choice([14, 30, 30, 30, 60]))
    else:
        mean_amount = float(rng.lognormal(math.log(45), 0.5))
        term = 30 if rng.random() < 0.1 else 14
    channels = list(OPTABLE_CHANNELS)
    preferred = channels[rng.choice(4, p=world.preferred[segment])]
    response = {}
    for channel in channels:
        low, high = NON_PREFERRED[segment][channel]
        response[channel] = float(rng.uniform(low, high))
    response[preferred] = float(rng.uniform(0.9, 1.3))
    if preferred in ("sms", "phone"):
        response["email"] *= 0.25  # these hardly read their mail: only an sms or a call works
    u = rng.random()
    opted = ("sms",) if u < 0.05 else ("phone",) if u < 0.08 else ("sms", "phone") if u < 0.10 \
        else ()
    changed_on, kind_after = None, None
    u_change, change_day = rng.random(), int(rng.integers(days // 4, max(days // 4 + 1,
                                                                        5 * days // 6)))
    if u_change < CHANGE_SHARE and WORSE[kind] != kind:
        changed_on, kind_after = start + dt.timedelta(days=change_day), WORSE[kind]
    if rng.random() < NEW_DEBTOR_SHARE:
        created_on = start + dt.timedelta(days=int(rng.integers(0, max(1, 3 * days // 5))))
    else:
        created_on = start - dt.timedelta(days=int(rng.integers(1, 1800)))
    u_churn, churn_day = rng.random(), int(rng.integers(days // 3, max(days // 3 + 1, days)))
    left_on = start + dt.timedelta(days=churn_day) if u_churn < CHURN_SHARE else None
    if left_on is not None and left_on <= created_on:
        left_on = None
    return Debtor(
        index=i, debtor_id=f"D{i:05d}", kind=kind, segment=segment, country=country,
        created_on=created_on, subscription=subscription, billing_day=int(rng.integers(1, 29)),
        mean_amount=mean_amount, term_days=term, pace=float(rng.lognormal(0.0, 0.25)),
        slow_lag=int(rng.integers(5, 36)), insolvent=bool(rng.random() < INSOLVENT_SHARE),
        preferred=preferred, response=response, opted_out=opted,
        changed_on=changed_on, kind_after=kind_after, left_on=left_on, world=world,
    )


def issue_invoices(debtor: Debtor, rng: np.random.Generator, start: dt.date,
                   days: int) -> list[tuple[int, float]]:
    """Issue days (index from ``start``) and amounts (cents): a subscription, or orders.

    Subscriptions bill the same amount on the same day of every month; orders arrive as a
    Poisson process (b2b 1.5 a month, b2c 0.5) with log-normal amounts around the debtor's mean.
    """
    first = max(0, (debtor.created_on - start).days)
    last = days if debtor.left_on is None else min(days, (debtor.left_on - start).days)
    out: list[tuple[int, float]] = []
    if debtor.subscription:
        amount = max(round(debtor.mean_amount, 2), 1.0)
        year, month = start.year, start.month
        while True:
            t = (dt.date(year, month, debtor.billing_day) - start).days
            if t >= last:
                break
            if t >= first:
                out.append((t, amount))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out
    rate = (1.5 if debtor.segment == "b2b" else 0.5) / 30.0
    t = first + float(rng.exponential(1 / rate))
    while t < last:
        amount = max(round(float(debtor.mean_amount * rng.lognormal(0.0, 0.5)), 2), 1.0)
        out.append((int(t), amount))
        t += float(rng.exponential(1 / rate))
    return out


def base_hazard(kind: str, days_past_due: int, slow_lag: int) -> float:
    """Daily chance of paying without any reminder, by kind and days past due (before pace)."""
    d = days_past_due
    if kind == "punctual":
        return 0.015 if d < -10 else (0.22 if d <= 0 else 0.30)
    if kind == "forgetful":
        return 0.01 if d < -10 else (0.05 if d <= 0 else 0.008)
    if kind == "slow_but_sure":
        return 0.004 if d < slow_lag else 0.10
    if kind == "cash_strapped":
        return 0.008 if d < 0 else 0.04
    if kind == "disputing":
        return 0.01 if d < -5 else 0.04
    return 0.002 if d < 0 else 0.005  # defaulting


def reminder_boost(response: dict[str, float], kind_response: float,
                   contacts: list[tuple[int, str]], day: int,
                   world: World = PROJECT_WORLD) -> float:
    """Extra daily chance of paying from the contacts about one invoice.

    Parameters
    ----------
    response
        The debtor's responsiveness per channel (``payment_plan`` counts as 1).
    kind_response
        The kind's multiplier (:attr:`Kind.response`).
    contacts
        (day index, channel) of the contacts about this invoice, oldest first.
    day
        Day index the chance is for; a contact acts from the day after it is sent.

    Returns
    -------
    float
        ``Σ boost(channel) · response(channel) · kind_response · FATIGUE^k ·
        exp(−(age − 1) / DECAY_DAYS)`` over contacts ``k`` = 0, 1, … with age ≥ 1 day.
    """
    total = 0.0
    fatigue = 1.0
    boost, decay = world.channel_boost, world.decay
    for sent, channel in contacts:
        age = day - sent
        if 1 <= age <= MAX_EFFECT_DAYS:
            total += boost[channel] * response.get(channel, 1.0) * fatigue * decay[age - 1]
        fatigue *= world.fatigue
    return total * kind_response


def daily_hazard(debtor: Debtor, kind: str, days_past_due: int,
                 contacts: list[tuple[int, str]], day: int, resolved: int | None = None) -> float:
    """Chance that an open, undisputed invoice is paid on day index ``day`` (capped)."""
    world = debtor.world
    h = base_hazard(kind, days_past_due, debtor.slow_lag) * debtor.pace * world.base_scale
    if contacts:
        h += reminder_boost(debtor.response, world.kinds[kind].response, contacts, day, world)
    if resolved is not None and day >= resolved:
        h += RESOLVED_BOOST * math.exp(-(day - resolved) / RESOLVED_DAYS)
    return min(h, HAZARD_CAP)


def insolvent_on(debtor: Debtor, kind: str) -> bool:
    """Whether the debtor, being of ``kind`` that day, is insolvent (defaulting and insolvent)."""
    return debtor.insolvent and kind == "defaulting"


def plan_accept_chance(debtor: Debtor, kind: str) -> float:
    """Chance that the debtor, of ``kind`` on the day of the offer, accepts a payment plan."""
    return 0.0 if insolvent_on(debtor, kind) else debtor.world.kinds[kind].plan_accept


def plan_keep_chance(debtor: Debtor, kind: str) -> float:
    """Chance that the debtor, of ``kind`` on the instalment's day, pays it on time."""
    return debtor.world.kinds[kind].plan_keep


def recovery_chance(debtor: Debtor, kind: str, days_past_due: int) -> float:
    """Chance that an agency recovers an invoice handed over ``days_past_due`` days past due
    by a debtor of ``kind`` (today the age does not matter)."""
    if insolvent_on(debtor, kind):
        return INSOLVENT_RECOVERY
    return debtor.world.kinds[kind].recovery


def bank_day(t: int, start_weekday: int) -> int:
    """The first Monday-to-Friday day index at or after ``t`` (weekend payments land Monday)."""
    weekday = (start_weekday + t) % 7
    return t + (7 - weekday if weekday >= 5 else 0)
