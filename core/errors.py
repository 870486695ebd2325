"""The errors tether raises on purpose.

Every error a user can cause is a :class:`TetherError`. The CLI prints it as one line,
``tether: error: <message>``, and exits with :attr:`TetherError.exit_code`: 2 for bad
input (config, plugin names, parameters, data that cannot be read), 1 for a stage that
failed while running. Messages name the offending key, file or plugin and say what to do.
"""

from __future__ import annotations


class TetherError(Exception):
    """Base class of every error tether raises deliberately."""

    exit_code: int = 1


class ConfigError(TetherError):
    """A chain config or a parameter is invalid; the message names the key path.

    A backend's validator may pass ``key`` (the parameter, ``sketch_size`` or
    ``tests.price``) instead of writing it into the message: the error of a chain then
    names the whole path, ``stages[3].params.drift.sketch_size: must be at least 2``.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class PluginError(TetherError):
    """A plugin is unknown, failed to load, lacks its extra, or broke a hook contract."""

    exit_code = 2


class DataError(TetherError):
    """Input data cannot be used: missing, unreadable, empty or of the wrong schema."""

    exit_code = 2


class IntegrityError(TetherError):
    """A stored object or record does not match its recorded hash."""

    exit_code = 1


class SchemaError(DataError):
    """Input rows do not match a model bundle's input schema: a missing field, a value of
    the wrong type, a category never seen in training. ``field`` names the input column
    (serving maps this error to HTTP 422 naming it)."""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DeploymentError(TetherError):
    """A deployment cannot change as asked: an illegal state transition, or a rollback
    with no previous version to roll back to."""

    exit_code = 2


class NotFoundError(TetherError):
    """A record, artifact or run asked for by id or name does not exist."""

    exit_code = 2


class StoreError(TetherError):
    """A storage or metadata backend cannot be reached or written."""

    exit_code = 1


class EngineError(TetherError):
    """The execution engine failed: a lost worker, an unreachable scheduler. Nothing the
    failing operation was writing is recorded."""


class StageError(TetherError):
    """A stage raised while running; the run is marked failed with this reason."""

    exit_code = 1


class CheckFailed(TetherError):
    """A check finished and found what its ``--fail-on`` level rejects (a critical monitor
    verdict, failing leakage findings, training-serving skew); its report was printed."""

    exit_code = 1


def did_you_mean(word: str, choices) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    import difflib

    match = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{match[0]}'?" if match else ""


def reject_unknown_keys(mapping, allowed, where: str, *, what: str = "key") -> None:
    """Raise ConfigError naming the first key of ``mapping`` not in ``allowed``, with a
    did-you-mean hint and the allowed keys (``policy.skew_gate: unknown key 'treshold'...``)."""
    allowed = list(allowed)
    unknown = [key for key in mapping if key not in allowed]
    if unknown:
        key = str(unknown[0])
        raise ConfigError(f"{where}: unknown {what} '{key}'{did_you_mean(key, allowed)} "
                          f"(allowed: {', '.join(map(str, allowed)) or 'none'})")
