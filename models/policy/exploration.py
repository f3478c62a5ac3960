"""Exploration: the decision's randomised part, with the exact probability of every option.

Two budgets from the policy file's ``exploration`` section:

* ``share`` — on a day the decision contacts or hands over, another allowed contact or
  waiting is drawn instead with this chance (``among: all``: any allowed action, any day);
* ``timing`` — on a day the decision waits while a contact is allowed and an invoice is
  overdue or due within ``learning.before_due_days``, a contact is drawn with this chance.

So the log keeps showing what other channels, earlier, later, skipped and before-due reminders
do, and every logged action carries the probability it was drawn with. With a value model, an
option the log already supports (``learning.min_support`` exploring decisions of it in its
band of days past due; waiting always) is not drawn: its chance stays with the decision's
choice, and a book whose log is rich everywhere stops paying for exploration. The draws are a
hash of (seed, debtor, day): the same request gets the same answer. The guard checks every option.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping

from paycadence.config import CONTACT_CHANNELS, Policy
from paycadence.guard import DebtorState, violations

#: Order of the options in an answer (weakest first), and which contact is "stronger".
STRENGTH = {"wait": 0, "email": 1, "sms": 2, "payment_plan": 3, "letter": 3, "phone": 4,
            "collection": 5}


def uniforms(seed: int, debtor_id: str, on: dt.date) -> tuple[float, float]:
    """Two reproducible uniforms in [0, 1) for (seed, debtor, day)."""
    raw = hashlib.blake2b(f"{seed}|{debtor_id}|{on.isoformat()}".encode(),
                          digest_size=16).digest()
    return int.from_bytes(raw[:8], "big") / 2**64, int.from_bytes(raw[8:], "big") / 2**64


def near_ids(state: DebtorState, on: dt.date, policy: Policy, eligible: tuple) -> tuple:
    """The eligible invoices a contact may name: overdue, or due within
    ``learning.before_due_days``."""
    wanted = frozenset(eligible)
    ahead = policy.learning.before_due_days
    return tuple(i.invoice_id for i in state.invoices
                 if i.invoice_id in wanted and (on - i.due_date).days >= -ahead)


def explore(state: DebtorState, on: dt.date, policy: Policy, allowed: Mapping[str, tuple],
            chosen: str, ids: tuple[str, ...], named: Mapping[str, tuple] | None = None,
            known: Callable[[str, tuple], bool] | None = None):
    """Draw today's action around ``chosen`` (already checked by the guard).

    ``named``: invoices each other action would name (default: what it may name, a contact
    only the near ones). ``known(action, ids)``: True when the log already shows enough of
    that option (the decision's support rule); such an option is not drawn, its chance stays
    with ``chosen``, so that a book stops paying for exploration where its log is rich enough.
    Returns ``(action, invoice ids, propensity, explored, options)``, ``options`` mapping every
    action that could have been drawn to (probability, ids).
    """
    named = dict(named or {})
    options = {chosen: tuple(ids)}
    ex = policy.exploration
    if ex.among == "all":
        pool, share = [a for a in allowed if a != chosen], ex.share
    elif chosen == "wait":
        pool, share = [a for a in CONTACT_CHANNELS if a in allowed], ex.timing
    elif chosen == "collection":
        pool, share = ["wait"], ex.share
    else:
        pool, share = [a for a in CONTACT_CHANNELS if a in allowed] + ["wait"], ex.share
    for action in pool:
        if action in options:
            continue
        cand = named.get(action)
        if cand is None:
            cand = () if action == "wait" else (
                tuple(allowed[action]) if action in ("payment_plan", "collection")
                else near_ids(state, on, policy, allowed[action]))
        if (action == "wait" or cand) and not violations(action, cand, state, on, policy):
            options[action] = cand
    names = sorted(options, key=lambda a: STRENGTH[a] * 10 + len(a))
    if chosen == "wait":  # timing: each contact share / k, waiting the rest
        k = len(names) - 1
        probs = {a: (1.0 - share if a == "wait" else share / k) if k else 1.0 for a in names}
    else:
        probs = {a: share / len(names) + (1.0 - share) * (a == chosen) if len(names) > 1
                 else 1.0 for a in names}
    drop = frozenset(a for a in names if a != chosen and known is not None
                     and known(a, options[a]))
    if drop:  # their chance stays with the choice (exactly 1 when nothing else is left)
        for a in drop:
            probs.pop(a)
        probs[chosen] = max(0.0, 1.0 - sum(p for a, p in probs.items() if a != chosen))
    u_explore, u_pick = uniforms(ex.seed, state.debtor_id, on)
    action, explored = chosen, False
    if len(names) > 1 and u_explore < share:
        pool = [a for a in names if a != "wait"] if chosen == "wait" else names
        pick = pool[min(int(u_pick * len(pool)), len(pool) - 1)]
        if pick != chosen and pick not in drop:
            action, explored = pick, True
    return action, options[action], probs[action], explored, {
        a: (probs[a], options[a]) for a in names if a not in drop}
