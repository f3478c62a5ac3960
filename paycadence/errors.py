"""Errors that reach a user as one line, never a traceback."""


class PaycadenceError(Exception):
    """A problem the user can fix; the CLI prints ``error: <message>`` and exits 2."""


class InputError(PaycadenceError):
    """Input data breaks the contract in a way that stops the run (missing column, bad file)."""


class ConfigError(PaycadenceError):
    """A policy or params file is unreadable, has an unknown key or a value of the wrong type."""


class ModelNotFoundError(PaycadenceError):
    """No registered model answers the requested name or alias."""


class RegistryUnavailableError(PaycadenceError):
    """The MLflow tracking store (a database server) cannot be reached."""
