"""The ``paycadence`` command: one Typer app, thin commands, one-line errors.

One module per group of commands, each registering its commands on :data:`app`
(:mod:`paycadence.cli.common`): ``data`` (simulate, ingest, features), ``learn`` (train),
``evaluation`` (evaluate, backtest), ``registry`` (models, promote), ``serving`` (recommend,
serve, demo) and ``report``.
"""

from __future__ import annotations

import sys

from paycadence.cli.common import app

# registered in this order, the order of --help: the data's way through the product
# isort: off
from paycadence.cli import data, learn, serving, report, evaluation, registry  # noqa: F401
# isort: on

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - entry point for python -m
    app(sys.argv[1:])
