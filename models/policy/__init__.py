"""The policy, one module per part (docs/policy.md):

* :mod:`~paycadence.models.policy.value` — the value model learnt from the book's log;
* :mod:`~paycadence.models.policy.decision` — every allowed action valued, the schedule
  where the log is silent;
* :mod:`~paycadence.models.policy.exploration` — the randomised part, exact propensities;
* :mod:`~paycadence.models.policy.schedule` — the policy file's schedule;
* :mod:`~paycadence.models.policy.guard` — the rules (:mod:`paycadence.guard`).
"""

from paycadence.models.policy.decision import (
    CONTACTS,
    BookValues,
    Choice,
    Valued,
    action_values,
    decide,
    next_contact_day,
    next_review,
    supported,
    valued_ids,
)
from paycadence.models.policy.exploration import STRENGTH, explore, uniforms

__all__ = [
    "CONTACTS",
    "STRENGTH",
    "BookValues",
    "Choice",
    "Valued",
    "action_values",
    "decide",
    "explore",
    "next_contact_day",
    "next_review",
    "supported",
    "uniforms",
    "valued_ids",
]
