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

A :class:`World` is one company's structure. Its true model is read through named functions
that the engine calls and an oracle may call too: :func:`daily_hazard` (with
:func:`base_hazard`, :func:`reminder_boost`, :func:`contact_effect` and
:func:`contact_multiplier`), :func:`plan_accept_chance`, :func:`plan_keep_chance`,
:func:`recovery_chance` and :func:`recovery_delay_days`. :data:`WORLDS` names the family
(docs/simulator.md, "The family of worlds"), :func:`world_from_seed` draws unseen ones, and
:func:`resolve_world` is what the CLI and the backtest call.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from paycadence.config import OPTABLE_CHANNELS
from paycadence.errors import PaycadenceError

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
    assumptions, to try a policy on a world it was not designed on; :data:`WORLDS` holds the
    whole named family and :func:`world_from_seed` draws more. Every knob's default is the
    project's behaviour.

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
    pre_due_effect
        Factor on the boost of a contact sent before the invoice's due date (1: as any
        contact; 0: useless; negative: it lowers the chance of paying while it lasts).
    annoyance
        Kind → share of the willingness to pay lost per earlier contact about the invoice
        (the whole daily hazard is scaled by ``(1 − a)^contacts``; missing: 0).
    channel_by_kind, channel_by_segment
        Kind (or segment) → channel → factor on that channel's boost (missing: 1): who answers
        which channel.
    recovery_half_life_days
        Days past due at hand-over after which the agency's recovery chance has halved,
        counted from ``recovery_grace_days``; None: recovery does not fall with age.
    recovery_grace_days
        Days past due up to which the agency's recovery chance is the kind's full chance.
    recovery_delay
        (min, span) in days: a recovery arrives ``min + ⌊u · span⌋`` days after hand-over.
    b2b_share
        Share of b2b debtors.
    amount_scale
        Factor on every debtor's mean invoice amount.
    terms
        Segment → payment terms in days, drawn with equal chance; None: the project's terms
        (b2b 14/30/60 days 20/60/20 %, b2c 14 days, 10 % 30).
    """

    name: str = "project"
    kinds: dict = field(default_factory=lambda: dict(KINDS))
    channel_boost: dict = field(default_factory=lambda: dict(CHANNEL_BOOST))
    decay_days: float = DECAY_DAYS
    fatigue: float = FATIGUE
    preferred: dict = field(default_factory=lambda: dict(PREFERRED))
    base_scale: float = 1.0
    pre_due_effect: float = 1.0
    annoyance: dict = field(default_factory=dict)
    channel_by_kind: dict = field(default_factory=dict)
    channel_by_segment: dict = field(default_factory=dict)
    recovery_half_life_days: float | None = None
    recovery_grace_days: int = 0
    recovery_delay: tuple[int, int] = (14, 62)
    b2b_share: float = B2B_SHARE
    amount_scale: float = 1.0
    terms: dict | None = None

    def __post_init__(self):
        if set(self.kinds) != set(KINDS) or abs(sum(k.share for k in self.kinds.values())
                                                 - 1.0) > 1e-9:
            raise ValueError(f"world {self.name}: needs the kinds {', '.join(KINDS)} with "
                             "shares summing to 1")
        bad = [f"annoyance of {k} must be in [0, 1)" for k, a in self.annoyance.items()
               if k not in KINDS or not 0.0 <= a < 1.0]
        bad += [f"channel_by_kind names an unknown kind {k}" for k in self.channel_by_kind
                if k not in KINDS]
        bad += [f"channel_by_segment names an unknown segment {s}"
                for s in self.channel_by_segment if s not in PREFERRED]
        if self.recovery_half_life_days is not None and self.recovery_half_life_days <= 0:
            bad.append("recovery_half_life_days must be > 0")
        if not 0.0 <= self.b2b_share <= 1.0 or self.amount_scale <= 0:
            bad.append("b2b_share must be in [0, 1] and amount_scale > 0")
        if self.terms is not None and (set(self.terms) != set(PREFERRED) or any(
                not t or min(t) < 1 for t in self.terms.values())):
            bad.append("terms needs b2b and b2c, each a non-empty list of days >= 1")
        if bad:
            raise ValueError(f"world {self.name}: {'; '.join(bad)}")
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


def _kinds(shares: dict[str, float], changes: dict[str, dict] | None = None
           ) -> dict[str, Kind]:
    """The project's kinds with new ``shares`` and per-kind trait changes (kind → fields)."""
    changes = changes or {}
    if set(shares) != set(KINDS) or not set(changes) <= set(KINDS):
        raise ValueError(f"name the kinds {', '.join(KINDS)}")
    return {k: replace(KINDS[k], share=shares[k], **changes.get(k, {})) for k in KINDS}


def _scaled_recovery(factor: float) -> dict[str, dict]:
    """Every kind's agency recovery × ``factor``, as changes for :func:`_kinds`."""
    return {k: {"recovery": KINDS[k].recovery * factor} for k in KINDS}


#: Dunning less is best: a book that pays by itself (mostly punctual and slow-but-sure),
#: reminders barely move anybody, every contact annoys (the hazard loses 20-40 % per contact,
#: disputing debtors most), a reminder before the due date makes paying less likely, and the
#: agency recovers little and less with age. A policy must learn to wait and not hand over.
RESTRAINT_WORLD = World(
    name="restraint",
    kinds=_kinds({"punctual": 0.45, "forgetful": 0.05, "slow_but_sure": 0.30,
                  "cash_strapped": 0.08, "disputing": 0.08, "defaulting": 0.04},
                 _scaled_recovery(0.5)),
    channel_boost={"email": 0.02, "sms": 0.02, "letter": 0.03, "phone": 0.05,
                   "payment_plan": 0.02},
    base_scale=1.2,
    pre_due_effect=-1.0,
    annoyance={"punctual": 0.2, "forgetful": 0.2, "slow_but_sure": 0.3, "cash_strapped": 0.3,
               "disputing": 0.4, "defaulting": 0.2},
    recovery_half_life_days=20.0,
)
#: Calls decide: emails, sms and letters hardly move anybody (boost ≤ 0.015) while a call moves
#: most debtors (0.45); a forgetful- and slow-heavy book that pays little by itself, and more
#: debtors prefer the phone. A policy must find that only the dearest channel works.
CALLS_WORLD = World(
    name="calls",
    kinds=_kinds({"punctual": 0.20, "forgetful": 0.30, "slow_but_sure": 0.25,
                  "cash_strapped": 0.12, "disputing": 0.05, "defaulting": 0.08}),
    channel_boost={"email": 0.01, "sms": 0.015, "letter": 0.015, "phone": 0.45,
                   "payment_plan": 0.05},
    preferred={"b2b": (0.30, 0.05, 0.25, 0.40), "b2c": (0.30, 0.30, 0.10, 0.30)},
    base_scale=0.7,
)
#: Plans are kept, hand-overs recover little: many cash-strapped debtors, who (like slow and
#: defaulting ones) accept a plan often and keep it (97-98 %), while the agency recovers 30 %
#: of what the project's does. A policy must offer plans instead of handing over.
PLANS_WORLD = World(
    name="plans",
    kinds=_kinds({"punctual": 0.25, "forgetful": 0.12, "slow_but_sure": 0.20,
                  "cash_strapped": 0.25, "disputing": 0.06, "defaulting": 0.12},
                 _scaled_recovery(0.3)
                 | {"cash_strapped": {"plan_accept": 0.9, "plan_keep": 0.98,
                                      "recovery": 0.18},
                    "slow_but_sure": {"plan_accept": 0.7, "plan_keep": 0.97, "recovery": 0.27},
                    "defaulting": {"plan_accept": 0.6, "plan_keep": 0.9, "recovery": 0.12}}),
    channel_boost={**CHANNEL_BOOST, "payment_plan": 0.15},
)
#: Hand over early: the agency recovers almost everything (95 %) and fast (7-27 days) from an
#: invoice handed over at its due date, but its chance halves every 15 days past due; a book
#: with many cash-strapped and defaulting debtors. The schedule's hand-over at due + 50 comes
#: too late; a policy must learn when to hand over.
AGENCY_WORLD = World(
    name="agency",
    kinds=_kinds({"punctual": 0.25, "forgetful": 0.12, "slow_but_sure": 0.18,
                  "cash_strapped": 0.22, "disputing": 0.08, "defaulting": 0.15},
                 {k: {"recovery": 0.95} for k in KINDS}),
    recovery_half_life_days=15.0,
    recovery_delay=(7, 21),
)
#: Remind before the due date: half the book is forgetful, and a reminder sent before the due
#: date works 2.5 times as well as one after (and fades faster, 4 days). A policy that waits
#: for the invoice to be overdue, like the schedule, misses most of what reminders can do.
EARLY_WORLD = World(
    name="early",
    kinds=_kinds({"punctual": 0.20, "forgetful": 0.50, "slow_but_sure": 0.12,
                  "cash_strapped": 0.08, "disputing": 0.04, "defaulting": 0.06}),
    decay_days=4.0,
    pre_due_effect=2.5,
)
#: Contacting disputing debtors sours them: a quarter of the book disputes (40 % of its
#: invoices), and every contact costs a disputing debtor 35 % of its willingness to pay
#: (cash-strapped ones 10 %); the rest is the project's world. A policy must tell the kinds
#: apart and leave the disputing ones alone.
SOURED_WORLD = World(
    name="soured",
    kinds=_kinds({"punctual": 0.30, "forgetful": 0.15, "slow_but_sure": 0.15,
                  "cash_strapped": 0.10, "disputing": 0.25, "defaulting": 0.05},
                 {"disputing": {"dispute": 0.40}}),
    annoyance={"disputing": 0.35, "cash_strapped": 0.10},
)
#: A b2b book: 90 % b2b debtors on 30-90-day terms (b2c 30), amounts three times the project's;
#: b2b debtors answer letters (× 1.5) and calls (× 1.3), hardly sms (× 0.2) or email (× 0.6);
#: the agency's chance halves every 90 days after 30 days past due. Long terms move every day
#: count the schedule is built on.
B2B_WORLD = World(
    name="b2b",
    kinds=_kinds({"punctual": 0.30, "forgetful": 0.15, "slow_but_sure": 0.30,
                  "cash_strapped": 0.12, "disputing": 0.07, "defaulting": 0.06}),
    channel_by_segment={"b2b": {"email": 0.6, "sms": 0.2, "letter": 1.5, "phone": 1.3}},
    recovery_half_life_days=90.0,
    recovery_grace_days=30,
    b2b_share=0.9,
    amount_scale=3.0,
    terms={"b2b": (30, 60, 60, 90), "b2c": (30,)},
)
#: Every named world (``--world NAME``); :func:`world_from_seed` draws unnamed ones.
WORLDS = {w.name: w for w in (PROJECT_WORLD, OTHER_WORLD, RESTRAINT_WORLD, CALLS_WORLD,
                              PLANS_WORLD, AGENCY_WORLD, EARLY_WORLD, SOURED_WORLD, B2B_WORLD)}

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
    segment = "b2b" if rng.random() < world.b2b_share else "b2c"
    country = COUNTRIES[rng.choice(len(COUNTRIES), p=COUNTRY_WEIGHTS)]
    subscription = rng.random() < (0.30 if segment == "b2b" else 0.75)
    if segment == "b2b":
        mean_amount = float(rng.lognormal(math.log(900), 0.8))
        term = int(rng.choice([14, 30, 30, 30, 60]))
    else:
        mean_amount = float(rng.lognormal(math.log(45), 0.5))
        term = 30 if rng.random() < 0.1 else 14
    if world.terms is not None:  # the default draws stay, so the streams stay aligned
        term = int(world.terms[segment][int(rng.integers(len(world.terms[segment])))])
    if world.amount_scale != 1.0:
        mean_amount *= world.amount_scale
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


def contact_effect(world: World, kind: str, segment: str, channel: str, sent: int,
                   due: int | None) -> float:
    """Factor on one contact's boost beyond the channel's own: who answers that channel
    (:attr:`World.channel_by_kind`, :attr:`World.channel_by_segment`) and whether it was sent
    before the due date (:attr:`World.pre_due_effect`; ``due`` None: not known, no factor)."""
    f = world.channel_by_kind.get(kind, {}).get(channel, 1.0) * world.channel_by_segment.get(
        segment, {}).get(channel, 1.0)
    if due is not None and sent < due:
        f *= world.pre_due_effect
    return f


def _plain(world: World) -> bool:
    """No contact factor other than 1 in this world (the project's reminder arithmetic)."""
    return world.pre_due_effect == 1.0 and not world.channel_by_kind and \
        not world.channel_by_segment


def reminder_boost(response: dict[str, float], kind_response: float,
                   contacts: list[tuple[int, str]], day: int,
                   world: World = PROJECT_WORLD, *, kind: str | None = None,
                   segment: str | None = None, due: int | None = None) -> float:
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
    world
        The world's boosts, fading and fatigue.
    kind, segment, due
        The debtor's kind and segment and the invoice's due day index, for the world's
        :func:`contact_effect` (ignored in a world without such factors).

    Returns
    -------
    float
        ``Σ boost(channel) · response(channel) · kind_response · FATIGUE^k ·
        exp(−(age − 1) / DECAY_DAYS) · contact_effect`` over contacts ``k`` = 0, 1, … with
        age ≥ 1 day; negative in a world where reminders before the due date hurt.
    """
    total = 0.0
    fatigue = 1.0
    boost, decay = world.channel_boost, world.decay
    plain = _plain(world)
    for sent, channel in contacts:
        age = day - sent
        if 1 <= age <= MAX_EFFECT_DAYS:
            b = boost[channel] * response.get(channel, 1.0) * fatigue * decay[age - 1]
            if not plain:
                b *= contact_effect(world, kind, segment, channel, sent, due)
            total += b
        fatigue *= world.fatigue
    return total * kind_response


def contact_multiplier(world: World, kind: str, contacts: list[tuple[int, str]],
                       day: int) -> float:
    """Factor on the whole daily hazard from annoyance: ``(1 − annoyance[kind])^n`` with ``n``
    the contacts about the invoice sent before ``day`` (1 when the kind is not annoyed)."""
    a = world.annoyance.get(kind, 0.0)
    if a == 0.0:
        return 1.0
    return (1.0 - a) ** sum(1 for sent, _ in contacts if sent < day)


def daily_hazard(debtor: Debtor, kind: str, days_past_due: int,
                 contacts: list[tuple[int, str]], day: int, resolved: int | None = None) -> float:
    """Chance that an open, undisputed invoice is paid on day index ``day`` (in [0, cap]).

    ``(base · pace · base_scale + reminder_boost) · contact_multiplier + resolution boost``.
    """
    world = debtor.world
    h = base_hazard(kind, days_past_due, debtor.slow_lag) * debtor.pace * world.base_scale
    if contacts:
        h += reminder_boost(debtor.response, world.kinds[kind].response, contacts, day, world,
                            kind=kind, segment=debtor.segment, due=day - days_past_due)
        h *= contact_multiplier(world, kind, contacts, day)
    if resolved is not None and day >= resolved:
        h += RESOLVED_BOOST * math.exp(-(day - resolved) / RESOLVED_DAYS)
    return min(max(h, 0.0), HAZARD_CAP)


def plan_accept_chance(debtor: Debtor, kind: str) -> float:
    """Chance that the debtor, being of ``kind`` that day, accepts a payment-plan offer
    (never when insolvent)."""
    if debtor.insolvent and kind == "defaulting":
        return 0.0
    return debtor.world.kinds[kind].plan_accept


def plan_keep_chance(debtor: Debtor, kind: str) -> float:
    """Chance that an accepted plan's instalment is paid on its day (else the plan breaks)."""
    return debtor.world.kinds[kind].plan_keep


def recovery_chance(debtor: Debtor, kind: str, days_past_due_at_handover: int) -> float:
    """Chance that the agency recovers an invoice handed over ``days_past_due_at_handover``
    days past due: the kind's recovery (15 % when insolvent), halving every
    :attr:`World.recovery_half_life_days` after :attr:`World.recovery_grace_days`."""
    world = debtor.world
    chance = INSOLVENT_RECOVERY if debtor.insolvent and kind == "defaulting" else \
        world.kinds[kind].recovery
    if world.recovery_half_life_days is None:
        return chance
    late = max(0, days_past_due_at_handover - world.recovery_grace_days)
    return chance * 0.5 ** (late / world.recovery_half_life_days)


def recovery_delay_days(world: World, u: float) -> int:
    """Days from hand-over to the agency's transfer (before bank days), from the draw ``u``."""
    low, span = world.recovery_delay
    return low + int(u * span)


def insolvent_on(debtor: Debtor, kind: str) -> bool:
    """Whether the debtor, being of ``kind`` that day, is insolvent (defaulting and insolvent)."""
    return debtor.insolvent and kind == "defaulting"


def bank_day(t: int, start_weekday: int) -> int:
    """The first Monday-to-Friday day index at or after ``t`` (weekend payments land Monday)."""
    weekday = (start_weekday + t) % 7
    return t + (7 - weekday if weekday >= 5 else 0)


#: Terms (days) a drawn world chooses from, by segment.
SEED_TERMS = {"b2b": ((14, 30, 30, 30, 60), (30, 60, 60, 90), (30, 30, 45), (60, 90)),
              "b2c": ((14,), (14, 14, 30), (30,), (7, 14))}


def world_from_seed(seed: int) -> World:
    """A structurally random world, drawn from ``seed`` (the same seed, the same world).

    Ranges (u: uniform): kind shares Dirichlet(6 · project share + 1); each kind's response ×
    u(0.5, 1.5), partial share × u(0.5, 1.5) (≤ 0.9), plan acceptance u(0.05, 0.9) and keeping
    u(0.5, 0.99), recovery × u(0.3, 1.05) (≤ 0.98), dispute share × u(0.5, 2) (≤ 0.5), annoyance
    0 (half the kinds) or u(0, 0.35); channel boosts email u(0.01, 0.15), sms u(0.01, 0.2),
    letter u(0.01, 0.2), phone u(0.05, 0.45), plan u(0.02, 0.15); per segment a factor
    u(0.3, 1.7) on each channel; fading u(3, 12) days, fatigue u(0.4, 0.9); preferred channels
    Dirichlet(4 · project + 0.5); base pace u(0.6, 1.3); a reminder before due × u(−1, 2.5);
    agency half-life none (half the worlds) or u(10, 120) days after u(0, 30) days, delay
    u(5, 20) + span u(10, 60) days; b2b share u(0.1, 0.9); amounts × exp(u(−1, 1.2)); terms
    one of :data:`SEED_TERMS` per segment. Its name is ``seed-<seed>``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x3017D]))
    names = list(KINDS)
    shares = rng.dirichlet([6 * KINDS[k].share + 1 for k in names])
    shares[-1] = 1.0 - float(shares[:-1].sum())
    kinds, annoyance = {}, {}
    for k, share in zip(names, shares, strict=True):
        base = KINDS[k]
        kinds[k] = replace(
            base, share=float(share), response=base.response * rng.uniform(0.5, 1.5),
            partial=min(0.9, base.partial * rng.uniform(0.5, 1.5)),
            plan_accept=rng.uniform(0.05, 0.9), plan_keep=rng.uniform(0.5, 0.99),
            recovery=min(0.98, base.recovery * rng.uniform(0.3, 1.05)),
            dispute=min(0.5, base.dispute * rng.uniform(0.5, 2.0)))
        if rng.random() < 0.5:
            annoyance[k] = float(rng.uniform(0.0, 0.35))
    boost = {c: float(rng.uniform(lo, hi)) for c, (lo, hi) in (
        ("email", (0.01, 0.15)), ("sms", (0.01, 0.2)), ("letter", (0.01, 0.2)),
        ("phone", (0.05, 0.45)), ("payment_plan", (0.02, 0.15)))}
    by_segment = {s: {c: float(rng.uniform(0.3, 1.7)) for c in OPTABLE_CHANNELS}
                  for s in PREFERRED}
    decay_days, fatigue = float(rng.uniform(3, 12)), float(rng.uniform(0.4, 0.9))
    preferred = {s: tuple(float(x) for x in rng.dirichlet([4 * p + 0.5 for p in PREFERRED[s]]))
                 for s in PREFERRED}
    base_scale, pre_due = float(rng.uniform(0.6, 1.3)), float(rng.uniform(-1.0, 2.5))
    half_life = float(rng.uniform(10, 120)) if rng.random() < 0.5 else None
    grace = int(rng.integers(0, 31))
    delay = (int(rng.integers(5, 21)), int(rng.integers(10, 61)))
    b2b_share, amount_scale = float(rng.uniform(0.1, 0.9)), float(math.exp(rng.uniform(-1, 1.2)))
    terms = {s: SEED_TERMS[s][int(rng.integers(len(SEED_TERMS[s])))] for s in SEED_TERMS}
    return World(name=f"seed-{seed}", kinds=kinds, channel_boost=boost, decay_days=decay_days,
                 fatigue=fatigue, preferred=preferred, base_scale=base_scale,
                 pre_due_effect=pre_due, annoyance=annoyance, channel_by_segment=by_segment,
                 recovery_half_life_days=half_life, recovery_grace_days=grace,
                 recovery_delay=delay, b2b_share=b2b_share, amount_scale=amount_scale,
                 terms=terms)


def resolve_world(name: str | World | None = None, seed: int | None = None) -> World:
    """The world a command or a backtest runs in: a named one (:data:`WORLDS`), one drawn
    from ``seed`` (:func:`world_from_seed`), or the project's when neither is given (a
    :class:`World` passes through).

    Raises
    ------
    paycadence.errors.PaycadenceError
        When both are given, or the name is unknown.
    """
    if isinstance(name, World):
        if seed is not None:
            raise PaycadenceError("give a world or a world seed, not both")
        return name
    if name is not None and seed is not None:
        raise PaycadenceError("give --world or --world-seed, not both")
    if seed is not None:
        return world_from_seed(seed)
    if name is None:
        return PROJECT_WORLD
    if name not in WORLDS:
        raise PaycadenceError(f"unknown world '{name}': use one of {', '.join(WORLDS)}, or "
                              "--world-seed N for a drawn one")
    return WORLDS[name]
