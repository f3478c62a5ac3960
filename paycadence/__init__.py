"""paycadence: learn each debtor's payment behaviour and choose the next dunning action.

The package is one data flow, one stage per sub-package, imported one way:
``paycadence.data`` → ``paycadence.features`` → ``paycadence.models`` →
``paycadence.training`` → ``paycadence.serving`` → ``paycadence.cli``.
This top-level module holds only configuration, errors, the rule guard and defaults.
"""

__version__ = "0.1.0"

import warnings as _warnings

# pandera imports pyspark.pandas whenever pyspark is installed (the `spark` extra), which warns
# on every import that it does not support pandas 3; paycadence never uses pyspark.pandas.
_warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                         category=FutureWarning)
