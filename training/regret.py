"""Where the learnt policy leaves value to the oracle, by the debtor's true kind.

The backtest's `captured` says how much of the oracle's gain the learnt policy takes; this says
where the rest is. :class:`ProbedPolicy` is the learnt policy with an
:class:`~paycadence.training.oracle.OraclePolicy` looking over its shoulder: on every state the
learnt policy decides on, the oracle values every allowed action with the simulator's true
model (expected net value over waiting, as it would decide itself), and the decision is tallied
by the debtor's true kind and the action taken: how often, the true gain of what was done, and
what the oracle would have done instead (its best action, when one gains over waiting) and how
much more that was worth on the day.

Days add up, gains do not: a plan the policy failed to offer on ten mornings is counted ten
times, though it could have been offered only once. Read the counts as where the policy
disagrees with the truth, and the gains as how much is at stake on a day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from paycadence.data.sim_policy import DebtorContext, Decision
from paycadence.data.sim_world import Debtor
from paycadence.guard import DebtorState, allowed_actions
from paycadence.training.backtest import LearntPolicy
from paycadence.training.oracle import OraclePolicy


@dataclass
class Tally:
    """The learnt decisions of one (kind, action): how many, the true gain of what was done,
    and per action the oracle would have taken instead: (days, gain it would have added)."""

    decisions: int = 0
    gain: float = 0.0
    instead: dict[str, list] = field(default_factory=dict)

    def missed(self) -> float:
        """What the oracle's choices would have added on these days, in all."""
        return sum(extra for _, extra in self.instead.values())


class ProbedPolicy(LearntPolicy):
    """:class:`~paycadence.training.backtest.LearntPolicy` whose every decision the simulator's
    true model values (see the module docstring); ``tallies`` maps (kind, action) → :class:`Tally`.

    ``debtors``: the company's true debtors
    (:func:`paycadence.data.simulate.company_debtors`); ``start``, ``value_from``: as the
    backtest's oracle takes them.
    """

    def __init__(self, *args, debtors: Mapping[str, Debtor], start: dt.date,
                 value_from: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.debtors = debtors
        self.oracle = OraclePolicy(self.policy, debtors, start=start, value_from=value_from)
        self.tallies: dict[tuple[str, str], Tally] = {}

    def is_decision_day(self, state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        self.oracle.is_decision_day(state, on, context)  # it keeps what the company sees
        return super().is_decision_day(state, on, context)

    def decide_many(self, requests: list[tuple[DebtorState, dt.date, DebtorContext]]
                    ) -> list[Decision]:
        decisions = super().decide_many(requests)
        for (state, on, context), decision in zip(requests, decisions, strict=True):
            allowed = allowed_actions(state, on, self.policy)
            gains = self.oracle.gains(state, on, context, allowed) if len(allowed) > 1 else {}
            done = gains[decision.action][0] if decision.action in gains else 0.0
            best, value = max(((a, g) for a, (g, _) in gains.items()), key=lambda kv: kv[1],
                              default=("wait", 0.0))
            if value <= 0:
                best, value = "wait", 0.0
            kind = self.debtors[state.debtor_id].kind_on(on)
            tally = self.tallies.setdefault((kind, decision.action), Tally())
            tally.decisions += 1
            tally.gain += done
            if best != decision.action and value > done:
                days_extra = tally.instead.setdefault(best, [0, 0.0])
                days_extra[0] += 1
                days_extra[1] += value - done
        return decisions


def regret_rows(tallies: Mapping[tuple[str, str], Tally], top: int = 3) -> list[tuple]:
    """(kind, action, decisions, true gain, missed, "best instead: days / extra, …") per
    tally, the largest missed first."""
    rows = []
    for (kind, action), t in sorted(tallies.items(), key=lambda kv: -kv[1].missed()):
        instead = ", ".join(f"{a} {n} / {extra:+,.0f}" for a, (n, extra) in sorted(
            t.instead.items(), key=lambda kv: -kv[1][1])[:top]) or "—"
        rows.append((kind, action, t.decisions, t.gain, t.missed(), instead))
    return rows
