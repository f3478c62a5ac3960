"""paycadence: learn each debtor's payment behaviour and choose the next dunning action.

The package is one data flow, one stage per sub-package, imported one way:
``paycadence.data`` → ``paycadence.features`` → ``paycadence.models`` →
``paycadence.training`` → ``paycadence.serving`` → ``paycadence.cli``.
This top-level module holds only configuration, errors, the rule guard and defaults.
"""

__version__ = "0.1.0"
