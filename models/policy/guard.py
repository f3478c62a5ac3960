"""The guard, as part of the policy: the one place the policy file's rules are enforced.

It lives in :mod:`paycadence.guard` (the simulator, the backtest and outside checks read the
rules there too, without the models); this module is its place in the policy package.
"""

from paycadence.guard import *  # noqa: F403
