"""Chain configs: YAML (``yaml.safe_load``) or TOML files that list stages in order.

A chain is validated completely before anything runs: unknown keys, unknown stages or
plugins, misspelled or mistyped parameters, and inputs that no earlier stage produces
are all :class:`~tether.errors.ConfigError` naming the key path (``stages[2].params.seed``).

``${VAR}`` (or ``${VAR:-default}``) in any string is replaced by the environment
variable; the run records the text as written, placeholders intact. Secrets written
literally (under a key such as ``password`` or ``dsn``, or in a URL) are masked in the
recorded text and in what a workspace remembers, with a warning to use ``${VAR}``.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .callables import import_callable
from .documents import parse_text, read_text
from .errors import ConfigError, did_you_mean, reject_unknown_keys
from .lifecycle import STAGES, STEP_ARGUMENTS, STEP_SERVICES, StageSpec
from .log import get_logger
from .names import check_name
from .secrets import add_secret, literal_secrets, mask_literals

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PluginHost


TOP_LEVEL_KEYS = ("version", "name", "workspace", "plugins", "storage", "store", "policy", "trackers", "engine",
                  "stages")
TRACKER_KEYS = ("plugin", "params", "on_error")
STAGE_KEYS = ("stage", "step", "id", "plugin", "params", "inputs", "produces")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@attrs.frozen(kw_only=True)
class BackendConfig:
    plugin: str
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TrackerConfig:
    """One entry of a chain's ``trackers``: a tracker added to the always-on ``store`` one.
    ``on_error`` says what a failure of it does: ``warn`` (drop it for the rest of the run,
    record the error on the run) or ``fail`` (fail the run)."""

    plugin: str
    params: dict[str, Any] = attrs.field(factory=dict)
    on_error: str = "warn"


@attrs.frozen(kw_only=True)
class StageConfig:
    """One entry of a chain's ``stages``: a lifecycle stage or a user step."""

    index: int
    id: str
    stage: str  # a lifecycle stage name, or "step"
    plugin: str = ""
    params: dict[str, Any] = attrs.field(factory=dict)
    inputs: dict[str, str] = attrs.field(factory=dict)  # argument -> stage id
    step: str = ""  # "module:function" for user steps
    produces: str = ""

    @property
    def where(self) -> str:
        return f"stages[{self.index}]"

    @property
    def spec(self) -> StageSpec | None:
        return STAGES.get(self.stage)

    @property
    def output_kind(self) -> str:
        return self.produces if self.stage == "step" else STAGES[self.stage].output


@attrs.frozen(kw_only=True)
class ChainConfig:
    name: str
    path: Path | None
    base_dir: Path
    workspace: Path
    text: str  # as written, ${VAR} placeholders intact, literal secrets masked
    digest: str
    plugins: tuple[str, ...] = ()
    storage: BackendConfig = BackendConfig(plugin="local")
    store: BackendConfig = BackendConfig(plugin="sqlite")
    policy: dict[str, Any] = attrs.field(factory=dict)
    stages: tuple[StageConfig, ...] = ()
    trackers: tuple[TrackerConfig, ...] = ()
    #: where partitioned work runs (``local`` unless the chain or ``--engine`` says otherwise)
    engine: BackendConfig = BackendConfig(plugin="local")
    #: the ``storage``/``store`` sections as written (``${VAR}`` kept): what a workspace remembers
    backends_as_written: dict[str, Any] = attrs.field(factory=dict)
    #: backend instances built by validation: ``storage``, ``store``, ``engine`` and one per stage id
    backends: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    #: tracker instances built by validation, one per entry of ``trackers``
    tracker_backends: list[Any] = attrs.field(factory=list, eq=False, repr=False)

    def stage_ids(self) -> list[str]:
        return [s.id for s in self.stages]

    def index_of(self, stage_id_or_name: str) -> int:
        for stage in self.stages:
            if stage.id == stage_id_or_name:
                return stage.index
        for stage in self.stages:
            if stage.stage == stage_id_or_name:
                return stage.index
        raise ConfigError(
            f"--from: no stage '{stage_id_or_name}' in chain '{self.name}'"
            f"{did_you_mean(stage_id_or_name, self.stage_ids())} (stages: {', '.join(self.stage_ids())})"
        )


# --- reading ------------------------------------------------------------------------------


def interpolate(value: Any, where: str) -> Any:
    """Replace ``${VAR}`` (or ``${VAR:-default}``) in every string of ``value``, nested
    mappings and lists included; ``where`` is the key path errors name."""
    if isinstance(value, str):
        def sub(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                add_secret(os.environ[name])
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set; "
                              f"export it or write ${{{name}:-default}}")

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def load_chain(path: str | os.PathLike, host: PluginHost) -> ChainConfig:
    """Read, interpolate and fully validate the chain file at ``path``."""
    path = Path(path)
    text = read_text(path, "chain file")
    raw = parse_text(text, str(path), path.suffix.lower())
    return build_chain(raw, host, text=text, path=path)


def build_chain(raw: Any, host: PluginHost, *, text: str = "", path: Path | None = None,
                base_dir: Path | None = None) -> ChainConfig:
    """Validate an already-parsed chain mapping (the Python API's entry point)."""
    source = str(path) if path else "chain"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a chain must be a mapping with 'version' and 'stages', got {type(raw).__name__}")
    reject_unknown_keys(raw, TOP_LEVEL_KEYS, source)
    if raw.get("version") != 1:
        raise ConfigError(f"{source}: version: expected 1, got {raw.get('version')!r}")
    text, as_written = _masked(raw, text, source)
    try:
        raw = interpolate(raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    base_dir = (base_dir or (path.parent if path else Path.cwd())).resolve()
    name = check_name(raw["name"] if "name" in raw else (path.stem if path else "chain"), f"{source}: name",
                      what="chain name")
    workspace = Path(raw.get("workspace") or ".tether")
    workspace = workspace if workspace.is_absolute() else base_dir / workspace

    if workspace.exists() and not workspace.is_dir():
        raise ConfigError(f"{source}: workspace: '{workspace}' is a file; name a folder")
    plugins = _register_plugins(raw.get("plugins") or [], host, base_dir, source)

    storage = parse_backend_config(raw.get("storage"), "storage", "local", source)
    store = parse_backend_config(raw.get("store"), "store", "sqlite", source)
    policy = raw.get("policy") or {}
    if not isinstance(policy, dict):
        raise ConfigError(f"{source}: policy: expected a mapping, got {policy!r}")

    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError(f"{source}: stages: expected a non-empty list of stages")
    stages = _build_stages(stages_raw, source)
    trackers = parse_trackers(raw.get("trackers"), source)
    engine = parse_backend_config(raw.get("engine"), "engine", "local", source)
    chain = ChainConfig(
        name=name, path=path, base_dir=base_dir, workspace=workspace, text=text,
        digest="sha256:" + hashlib.sha256(text.encode()).hexdigest(), plugins=tuple(plugins),
        storage=storage, store=store, policy=policy, stages=stages, backends_as_written=as_written,
        trackers=trackers, engine=engine,
    )
    validate_chain(chain, host)
    return chain


def _masked(raw: dict[str, Any], text: str, source: str) -> tuple[str, dict[str, Any]]:
    """The chain text and its ``storage``/``store`` sections with literal secrets masked."""
    secrets = literal_secrets(raw)
    for secret in secrets:
        add_secret(secret)
    if secrets:
        get_logger("tether.config").warning(
            "secret written literally in the chain; it is masked in records, but prefer ${VAR}",
            chain=source, count=len(secrets))
    sections = {key: raw[key] for key in ("storage", "store") if raw.get(key) is not None}
    return mask_literals(text, secrets), mask_literals(sections, secrets)


def _register_plugins(plugins: Any, host: PluginHost, base_dir: Path, source: str) -> list[str]:
    """Import the chain's local plugin modules (its folder is importable)."""
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"{source}: plugins: expected a list of dotted module paths, got {plugins!r}")
    if str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    for i, dotted in enumerate(plugins):
        try:
            host.register_module(dotted, origin="chain")
        except Exception as exc:
            raise ConfigError(f"{source}: plugins[{i}]: {exc}") from None
    return plugins


def parse_backend_config(value: Any, key: str, default: str, source: str) -> BackendConfig:
    """A ``storage:``/``store:`` section (a plugin name, or ``{plugin, params}``) as a
    :class:`BackendConfig`; ``default`` is the plugin when the section is absent."""
    if value is None:
        return BackendConfig(plugin=default)
    if isinstance(value, str):
        return BackendConfig(plugin=value)
    if (
        not isinstance(value, dict)
        or set(value) - {"plugin", "params"}
        or not isinstance(value.get("plugin", default), str)
    ):
        raise ConfigError(f"{source}: {key}: expected {{plugin: NAME, params: {{...}}}}, got {value!r}")
    params = value.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{source}: {key}.params: expected a mapping, got {params!r}")
    return BackendConfig(plugin=value.get("plugin", default), params=params)


def parse_trackers(value: Any, source: str) -> tuple[TrackerConfig, ...]:
    """A chain's ``trackers:`` list (``[{plugin: NAME, params: {...}, on_error: warn|fail}]``)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{source}: trackers: expected a list of {{plugin: NAME, params: {{...}}}}, got {value!r}",
                          key="trackers")
    trackers = []
    for i, entry in enumerate(value):
        where = f"trackers[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: {where}: expected {{plugin: NAME, params: {{...}}}}, got {entry!r}",
                              key=where)
        reject_unknown_keys(entry, TRACKER_KEYS, f"{source}: {where}")
        plugin, params, on_error = entry.get("plugin"), entry.get("params") or {}, entry.get("on_error", "warn")
        if not isinstance(plugin, str) or not plugin:
            raise ConfigError(f"{source}: {where}.plugin: expected a tracker plugin name, got {plugin!r}",
                              key=f"{where}.plugin")
        if plugin == "store":
            raise ConfigError(f"{source}: {where}.plugin: the store tracker is always on; remove this entry",
                              key=f"{where}.plugin")
        if not isinstance(params, dict):
            raise ConfigError(f"{source}: {where}.params: expected a mapping, got {params!r}", key=f"{where}.params")
        if on_error not in ("warn", "fail"):
            raise ConfigError(f"{source}: {where}.on_error: expected 'warn' or 'fail', got {on_error!r}",
                              key=f"{where}.on_error")
        trackers.append(TrackerConfig(plugin=plugin, params=params, on_error=on_error))
    return tuple(trackers)


def with_engine(chain: ChainConfig, plugin: str, host: PluginHost, params: dict | None = None) -> ChainConfig:
    """``chain`` running on the engine ``plugin`` (``tether run --engine``): the chain's
    ``engine.params`` are kept when it names the same plugin, else the engine's defaults;
    ``params`` (``--engine-param``) are set over them."""
    params = {**(chain.engine.params if chain.engine.plugin == plugin else {}), **(params or {})}
    engine = BackendConfig(plugin=plugin, params=params)
    backends = dict(chain.backends)
    host.backends.get("engine", plugin, where="--engine")
    source = str(chain.path) if chain.path else "chain"
    backends["engine"] = host.backends.create("engine", plugin, params, where=f"{source}: engine")
    return attrs.evolve(chain, engine=engine, backends=backends)


def _build_stages(stages_raw: list, source: str) -> tuple[StageConfig, ...]:
    stages, seen = [], set()
    for i, entry in enumerate(stages_raw):
        where = f"{source}: stages[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with 'stage' or 'step', got {entry!r}")
        reject_unknown_keys(entry, STAGE_KEYS, where)
        if ("stage" in entry) == ("step" in entry):
            raise ConfigError(f"{where}: give exactly one of 'stage' (a lifecycle stage) or 'step' (module:function)")
        params = entry.get("params") or {}
        inputs = entry.get("inputs") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}.params: expected a mapping, got {params!r}")
        if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
            raise ConfigError(f"{where}.inputs: expected a mapping of argument -> stage id, got {inputs!r}")
        if "step" in entry:
            step = entry["step"]
            if not isinstance(step, str) or ":" not in step:
                raise ConfigError(f"{where}.step: expected 'module:function', got {step!r}")
            produces = entry.get("produces", "model")
            if produces not in STEP_ARGUMENTS:
                raise ConfigError(f"{where}.produces: {produces!r} is not a record kind "
                                  f"(allowed: {', '.join(STEP_ARGUMENTS)})")
            if "plugin" in entry:
                raise ConfigError(f"{where}: a step has no 'plugin'; its function is named by 'step'")
            default_id = step.split(":")[1]
            config = dict(stage="step", step=step, produces=produces)
        else:
            stage = entry["stage"]
            spec = STAGES.get(stage)
            if spec is None:
                raise ConfigError(
                    f"{where}.stage: unknown stage {stage!r}{did_you_mean(str(stage), STAGES)} "
                    f"(allowed: {', '.join(STAGES)})"
                )
            plugin = entry.get("plugin", spec.default_plugin)
            if not isinstance(plugin, str) or not plugin:
                raise ConfigError(f"{where}.plugin: the {stage} stage needs a plugin (see `tether plugins`)")
            default_id = stage
            config = dict(stage=stage, plugin=plugin)
        stage_id = entry.get("id") or default_id
        if not isinstance(stage_id, str):
            raise ConfigError(f"{where}.id: expected a string, got {stage_id!r}")
        if stage_id in seen:
            if "id" in entry:
                raise ConfigError(f"{where}.id: '{stage_id}' is used by an earlier stage; ids must be unique")
            n = 2
            while f"{stage_id}-{n}" in seen:
                n += 1
            stage_id = f"{stage_id}-{n}"
        seen.add(stage_id)
        stages.append(StageConfig(index=i, id=stage_id, params=params, inputs=inputs, **config))
    return tuple(stages)


def resolve_step(stage: StageConfig):
    """Import a user step's function; errors name the stage."""
    return import_callable(stage.step, where=f"{stage.where}.step")


def step_arguments(func) -> list[str]:
    return [p.name for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def validate_chain(chain: ChainConfig, host: PluginHost) -> None:
    """Check every stage's plugin, params and inputs before anything runs."""
    source = str(chain.path) if chain.path else "chain"
    host.backends.check_policy(chain.policy, where=f"{source}: policy", host=host)
    backends = chain.backends
    for key, config in (("storage", chain.storage), ("store", chain.store)):
        backends[key] = host.backends.create(key, config.plugin, config.params, where=f"{source}: {key}",
                                             workspace=chain.workspace)
    backends["engine"] = host.backends.create("engine", chain.engine.plugin, chain.engine.params,
                                              where=f"{source}: engine")
    chain.tracker_backends[:] = [host.backends.create("tracker", t.plugin, t.params, where=f"{source}: trackers[{i}]")
                                 for i, t in enumerate(chain.trackers)]
    produced: dict[str, str] = {}  # stage id -> record kind, in order
    for stage in chain.stages:
        where = f"{source}: {stage.where}"
        if stage.stage == "step":
            func = resolve_step(stage)
            wanted = step_arguments(func)
            allowed = (*STEP_ARGUMENTS, *STEP_SERVICES)
            for arg in wanted:
                if arg not in allowed:
                    raise ConfigError(
                        f"{where}.step: {stage.step} takes '{arg}', which tether cannot provide "
                        f"(a step may take: {', '.join(allowed)})"
                    )
            needed = {a: a for a in wanted if a in STEP_ARGUMENTS}
            optional: tuple[str, ...] = ()
        else:
            spec = STAGES[stage.stage]
            backends[stage.id] = host.backends.create(spec.backend_kind, stage.plugin, stage.params, where=where)
            needed, optional = spec.inputs, spec.optional
        for arg, ref in stage.inputs.items():
            if arg not in needed:
                raise ConfigError(
                    f"{where}.inputs.{arg}: the {stage.stage} stage takes no input '{arg}' "
                    f"(inputs: {', '.join(needed) or 'none'})"
                )
            if ref not in produced:
                raise ConfigError(
                    f"{where}.inputs.{arg}: no earlier stage has id '{ref}'{did_you_mean(ref, produced)} "
                    f"(earlier stages: {', '.join(produced) or 'none'})"
                )
            if produced[ref] != needed[arg]:
                raise ConfigError(
                    f"{where}.inputs.{arg}: stage '{ref}' produces a {produced[ref]}, "
                    f"but '{arg}' needs a {needed[arg]}"
                )
        for arg, kind in needed.items():
            if arg in stage.inputs or arg in optional:
                continue
            if kind not in produced.values():
                raise ConfigError(
                    f"{where}: the {stage.stage} stage needs a {kind} as '{arg}', but no earlier stage "
                    f"produces one; add a stage that does, or set inputs.{arg} to a stage id"
                )
        produced[stage.id] = stage.output_kind
