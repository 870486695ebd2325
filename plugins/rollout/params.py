"""Parameters shared by the serving strategies: the fallback and the canary analysis.

Each is an attrs class the strategies take as a parameter, so a chain's or the CLI's
error names the whole key path (``stages[7].params.fallback.rule: expected
'module:function'``, ``params.steps[2]: ...``).
"""

from __future__ import annotations

from typing import Any

import attrs
from tether.errors import ConfigError
from tether.names import NAME
from tether.validators import above, at_least, one_of

FALLBACK_MODES = ("previous", "rule", "recommend_only", "none")


def _check_rule(inst, attribute, value) -> None:
    if value is None:
        return
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        raise ConfigError(f"expected 'module:function', got {value!r}", key=attribute.name)


@attrs.frozen(kw_only=True)
class Fallback:
    """What a router answers when the model version cannot: ``previous`` (the stable or
    previous version), ``rule`` (the user's ``module:function`` called with the rows),
    ``recommend_only`` (the prediction is returned flagged as a recommendation a person
    confirms) or ``none`` (an error)."""

    mode: str = attrs.field(default="previous", validator=one_of(*FALLBACK_MODES))
    rule: str | None = attrs.field(default=None, validator=_check_rule)

    def __attrs_post_init__(self) -> None:
        if self.mode == "rule" and self.rule is None:
            raise ConfigError("mode 'rule' needs rule: 'module:function'", key="rule")
        if self.rule is not None and self.mode != "rule":
            raise ConfigError(f"a rule is used only with mode 'rule' (mode is '{self.mode}')", key="rule")

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "rule": self.rule}


def _check_signals(inst, attribute, value) -> None:
    for name, params in value.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a signal name must be a non-empty string, got {name!r}", key=attribute.name)
        if not isinstance(params, dict):
            raise ConfigError(f"expected a mapping of the signal's parameters, got {params!r}",
                              key=f"{attribute.name}.{name}")


@attrs.frozen(kw_only=True)
class Analysis:
    """How a router judges a canary between steps: every ``interval`` seconds, once both
    versions served ``min_requests``, it measures each ``signals`` entry (an analysis
    signal name -> its parameters, thresholds included) and promotes or rolls back."""

    interval: float = attrs.field(default=30.0, validator=above(0))
    min_requests: int = attrs.field(default=100, validator=at_least(1))
    signals: dict[str, Any] = attrs.field(factory=dict, validator=_check_signals)

    def as_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "min_requests": self.min_requests,
                "signals": {k: dict(v) for k, v in self.signals.items()}}


def check_environment(inst, attribute, value) -> None:
    """Validator: an environment is a name (it appears in ids, folders and URLs)."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ConfigError(f"the environment {value!r} may hold only letters, digits, '.', '_' and '-' (starting with "
                          "a letter or digit, at most 128 characters)", key=attribute.name)


def check_steps(inst, attribute, value) -> None:
    """Canary steps: percentages in (0, 100], strictly increasing, ending at 100."""
    if not value:
        raise ConfigError("needs at least one step, e.g. [5, 25, 50, 100]", key=attribute.name)
    previous = 0.0
    for i, step in enumerate(value):
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 100:
            raise ConfigError(f"a step is a percentage in (0, 100], got {step!r}", key=f"{attribute.name}[{i}]")
        if step <= previous:
            raise ConfigError(f"steps must increase, got {step:g} after {previous:g}", key=f"{attribute.name}[{i}]")
        previous = step
    if value[-1] != 100:
        raise ConfigError(f"the last step must be 100 (full traffic), got {value[-1]:g}",
                          key=f"{attribute.name}[{len(value) - 1}]")
