"""YAML pipelines: Python defaults < YAML file < `--set id.param=value` < first-class CLI flags.

A pipeline file lists stages (or jobs of stages). Each stage entry names the stage and gives its
constructor arguments as keys, so a YAML key is exactly a constructor argument:

    output_format: parquet
    stages:
      - stage: language          # a registered name, or "package.module:Class"
        id: lang                 # optional; used by --set lang.threshold=0.8
        languages: [en, fr]
        threshold: 0.65
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import inspect
import re
import typing
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from corpus.core.errors import CorpusError
from corpus.core.stage import BARRIER, Barrier, Stage

# Stage names and preset folders come from entry points (pyproject.toml), so the core names no capability
# and another installed package can add stages or presets of its own. Imported lazily: `corpus` never pulls in
# fastText or torch.
STAGE_GROUP = "corpus.stages"
PRESET_GROUP = "corpus.presets"

TOP_LEVEL_KEYS = {"name", "description", "output_format", "max_docs_per_shard", "split_shards_mb", "stages", "jobs"}
DEFAULTS: dict[str, Any] = {"output_format": "parquet", "max_docs_per_shard": 100_000}
LINE = "__line__"


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads no, yes, on, off as booleans, which turned
    `languages: [no, en]` (Norwegian, English) into [False, "en"]."""


_BOOL = "tag:yaml.org,2002:bool"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def parse_value(text: str) -> Any:
    """A `--set` value read as YAML 1.2 (numbers, lists, true/false; `no` stays the string 'no')."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - SafeLoader subclass


class _LineLoader(_Yaml12Loader):
    """Records the line of every mapping so errors can point into the YAML file."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        return mapping


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != LINE}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


@functools.cache
def registered_stages() -> dict[str, str]:
    """Registered stage name -> 'package.module:Class'."""
    return {ep.name: ep.value for ep in entry_points(group=STAGE_GROUP)}


@functools.cache
def presets() -> dict[str, Path]:
    """Preset name -> its YAML file, from every package named in the `corpus.presets` entry points."""
    found: dict[str, Path] = {}
    for ep in entry_points(group=PRESET_GROUP):
        for path in Path(str(resources.files(ep.value))).glob("*.yaml"):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def list_presets() -> list[str]:
    return list(presets())


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise CorpusError(f"{path}: config file does not exist") from err
    except IsADirectoryError as err:
        raise CorpusError(f"{path}: is a folder; give a pipeline YAML file") from err
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise CorpusError(f"{path}: cannot read ({err.strerror})") from err
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise CorpusError(f"{where}: invalid YAML ({getattr(err, 'problem', err)})") from err
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected a mapping with 'stages' or 'jobs' at the top level")
    data["__source__"] = str(path)
    return data


def load_config(
    path: str | Path | None = None, preset: str | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """The resolved pipeline config (plain data), validated; defaults to the `default` preset."""
    if path and preset:
        raise CorpusError("give either --config or --preset, not both")
    if path is None:
        name = preset or "default"
        if name not in list_presets():
            raise CorpusError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
        path = presets()[name]
    raw = read_yaml(path)
    config = normalise(raw)
    for override in overrides or []:
        apply_override(config, override)
    validate(config)
    return _strip_lines(config)


def normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn either file form (flat `stages` or `jobs`) into {..., jobs: [{name, stages: [...]}]}."""
    source = raw.pop("__source__", "<config>")
    line = raw.get(LINE, 1)
    unknown = set(raw) - TOP_LEVEL_KEYS - {LINE}
    if unknown:
        raise CorpusError(
            f"{source}:{line}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(sorted(TOP_LEVEL_KEYS))}"
        )
    if ("stages" in raw) == ("jobs" in raw):
        raise CorpusError(f"{source}:{line}: give exactly one of 'stages' or 'jobs'")
    config = {**DEFAULTS, **{k: v for k, v in raw.items() if k not in ("stages", "jobs")}}
    jobs = raw.get("jobs") or [{"name": "main", "stages": raw["stages"]}]
    if not isinstance(jobs, list) or not jobs:
        raise CorpusError(f"{source}:{line}: 'jobs' must be a non-empty list")
    seen: set[str] = set()
    config["jobs"] = []
    for index, job in enumerate(jobs):
        if not isinstance(job, dict) or not isinstance(job.get("stages"), list):
            raise CorpusError(f"{source}:{_line(job, line)}: each job needs a 'stages' list")
        if not job["stages"]:
            raise CorpusError(f"{source}:{_line(job, line)}: 'stages' is empty; list at least one stage "
                              f"(registered stages: {', '.join(sorted(registered_stages()))})")
        stages = []
        for entry in job["stages"]:
            if isinstance(entry, str):
                entry = {"stage": entry}
            if not isinstance(entry, dict) or "stage" not in entry:
                raise CorpusError(f"{source}:{_line(entry, line)}: each stage needs a 'stage' key")
            entry = dict(entry)
            entry["__source__"] = f"{source}:{_line(entry, line)}"
            stage_id = str(entry.get("id") or entry["stage"])
            base, n = stage_id, 2
            while stage_id in seen:
                stage_id, n = f"{base}_{n}", n + 1
            seen.add(stage_id)
            entry["id"] = stage_id
            stages.append(entry)
        config["jobs"].append({"name": str(job.get("name") or f"job{index}"), "stages": stages})
    return config


def _line(node: Any, default: int) -> int:
    return node.get(LINE, default) if isinstance(node, dict) else default


def apply_override(config: dict[str, Any], override: str) -> None:
    """Apply `key=value` or `stage_id.param=value`; the value is parsed as YAML (numbers, lists...)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise CorpusError(f"--set {override!r}: expected KEY=VALUE, e.g. lang.threshold=0.8")
    key = key.strip()
    try:
        value = parse_value(text) if text.strip() else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CorpusError(f"--set {override!r}: value is not valid YAML ({problem})") from err
    if "." not in key:
        if key not in TOP_LEVEL_KEYS - {"stages", "jobs"}:
            raise CorpusError(f"--set {key}: unknown setting; use STAGE_ID.PARAM=VALUE for stage parameters")
        config[key] = value
        return
    stage_id, param = key.split(".", 1)
    for job in config["jobs"]:
        for entry in job["stages"]:
            if entry["id"] == stage_id:
                if param in ("stage", "id"):
                    raise CorpusError(f"--set {key}: cannot change a stage's {param}")
                entry[param] = value
                entry["__source__"] = f"--set {override}"
                return
    ids = [e["id"] for j in config["jobs"] for e in j["stages"]]
    raise CorpusError(f"--set {key}: no stage with id {stage_id!r}; stage ids: {', '.join(ids)}")


def resolve_stage_class(name: str, where: str = "") -> type:
    stages = registered_stages()
    target = stages.get(name, name)
    if ":" not in target:
        raise CorpusError(
            f"{where}: unknown stage {name!r}; registered stages: {', '.join(sorted(stages))} "
            "(or give 'package.module:Class')"
        )
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise CorpusError(f"{where}: cannot import stage {target!r} ({err})") from err


def stage_params(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("stage", "id", "__source__", LINE)}


class PipelineSettings(BaseModel):
    """The top-level keys of a pipeline file, with their types and ranges."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    output_format: typing.Literal["parquet", "jsonl", "jsonl.gz"] = "parquet"
    max_docs_per_shard: Annotated[int, Field(ge=1)] | None = 100_000
    split_shards_mb: Annotated[float, Field(gt=0)] | None = None


def validate(config: dict[str, Any]) -> None:
    """Types and ranges of every setting and stage parameter, checked before any work (pydantic).

    Stage parameters are checked against the stage constructor's type hints (`stage_model`); the validated
    values replace the given ones, so a stage gets `0.8`, never the string "0.8".
    """
    settings = {k: v for k, v in config.items() if k in TOP_LEVEL_KEYS - {"stages", "jobs"}}
    try:
        checked = PipelineSettings(**settings)
    except ValidationError as err:
        raise CorpusError(f"pipeline settings: {_problems(err)}") from None
    config.update({k: getattr(checked, k) for k in settings if getattr(checked, k) != settings[k]})
    for job in config["jobs"]:
        for entry in job["stages"]:
            where = entry.get("__source__", "<config>")
            cls = resolve_stage_class(entry["stage"], where)
            params = _strip_lines(stage_params(entry))
            signature = inspect.signature(cls.__init__)
            valid = [p for p in signature.parameters if p != "self"]
            accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
            for param in params:
                if param not in valid and not accepts_any:
                    raise CorpusError(
                        f"{where}: stage {entry['id']!r} ({cls.__name__}) has no parameter {param!r}; "
                        f"valid parameters: {', '.join(valid) or '(none)'}"
                    )
            label = f"{where}: stage {entry['id']!r} ({cls.__name__})"
            try:
                model = stage_model(cls)(**params)
            except ValidationError as err:
                raise CorpusError(f"{label}: {_problems(err)}") from None
            for name in params:  # coerced values ("0.8" -> 0.8, "off" -> False); equal ones (3 vs 3.0) stay as given
                if name in type(model).model_fields and getattr(model, name) != params[name]:
                    entry[name] = getattr(model, name)
            check = getattr(cls, "check_params", None)
            if callable(check):  # what types cannot say (e.g. language codes the model can name)
                try:
                    check(stage_params(entry))
                except (ValueError, TypeError) as err:
                    raise CorpusError(f"{label}: {err}") from None


# Ranges by naming convention, for stages whose hints give only a type: shares, ratios and thresholds lie in
# [0, 1]; counts and sizes are not negative (some at least 1). A stage states its own range with
# `Annotated[float, Field(ge=..., le=...)]` in its constructor's hints, which pydantic applies as well.
_SHARE = re.compile(r"(threshold|_thr$|ratio|frac|fraction|share|confidence|_below$|min_candidate|dropout)")
_AT_LEAST_ONE = {"batch_size", "eval_batch_size", "num_perm", "bands", "rows", "ngram", "char_ngram", "cascade_top_k",
                 "max_length", "workers", "steps", "grad_accum"}
_SIGNED = {"seed"}


def _numbers(value: Any) -> typing.Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _numbers(item)


def _range_check(name: str) -> Any:
    if name in _SIGNED:
        return None
    low, high = (0.0, 1.0) if _SHARE.search(name) else (1.0 if name in _AT_LEAST_ONE else 0.0, None)

    def check(value: Any) -> Any:
        if name.endswith(("_n_grams",)):  # pairs of (n, share): only the share is a share
            return value
        for number in _numbers(value):
            if number < low or (high is not None and number > high):
                raise ValueError(f"must be between {low:g} and {high:g}" if high is not None
                                 else f"must be at least {low:g}")
        return value

    return check


@functools.cache
def params_model(target: Any) -> type[BaseModel]:
    """A pydantic model of what `target` accepts: a class's constructor parameters, a dataclass's fields or a
    function's parameters, with their type hints, defaults and (by naming convention) ranges."""
    function = target.__init__ if isinstance(target, type) and not dataclasses.is_dataclass(target) else target
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # an unresolvable hint: check names only, not types
        hints = {}
    fields: dict[str, Any] = {}
    extra = "forbid"
    if dataclasses.is_dataclass(target):
        entries = [(f.name, f.default if f.default is not dataclasses.MISSING else
                    (f.default_factory() if f.default_factory is not dataclasses.MISSING else ...))
                   for f in dataclasses.fields(target)]
    else:
        entries = []
        for name, param in inspect.signature(function).parameters.items():
            if name == "self" or param.kind is param.VAR_POSITIONAL:
                continue
            if param.kind is param.VAR_KEYWORD:
                extra = "allow"
                continue
            entries.append((name, ... if param.default is param.empty else param.default))
    for name, default in entries:
        annotation = hints.get(name, Any)
        check = _range_check(name)
        if check is not None:
            annotation = Annotated[annotation, AfterValidator(check)]
        fields[name] = (annotation, default)
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True)
    return create_model(f"{getattr(target, '__name__', 'Options')}Parameters", __config__=config, **fields)


stage_model = params_model


def check_options(target: Any, values: dict[str, Any], label: str) -> dict[str, Any]:
    """`values` checked against `target`'s parameters (see `params_model`); the coerced values, or CorpusError
    naming `label`, the option and what is wrong, in one line. Only the given keys are returned."""
    model_cls = params_model(target)
    unknown = sorted(set(values) - set(model_cls.model_fields))
    if unknown and model_cls.model_config.get("extra") == "forbid":
        raise CorpusError(f"{label}: unknown option(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(sorted(model_cls.model_fields))}")
    required = {name for name, f in model_cls.model_fields.items() if f.is_required()}
    try:
        model = model_cls.model_validate({**{name: None for name in required - set(values)}, **values})
    except ValidationError as err:
        errors = [e for e in err.errors() if not (e["loc"] and e["loc"][0] in required - set(values))]
        if errors:
            raise CorpusError(f"{label}: {_problems(err, errors)}") from None
        return dict(values)
    return {name: getattr(model, name) if getattr(model, name) != values[name] else values[name] for name in values}


def _problems(err: ValidationError, errors: list[Any] | None = None) -> str:
    """pydantic's errors as one line: `threshold 'high': input should be a valid number; ...`."""
    parts = []
    for problem in errors if errors is not None else err.errors():
        loc = [str(p) for p in problem["loc"]]
        # A union reports each member; the first location part is the parameter, the rest which member failed.
        name = loc[0] if loc else "?"
        message = problem["msg"].lower().removeprefix("value error, ")
        hint = "; a list is written [a, b]" if "valid list" in message else ""
        given = repr(problem.get("input"))
        given = given if len(given) <= 80 else given[:77] + "..."
        part = f"{name} {given}: {message}{hint}"
        if part not in parts and not any(p.startswith(f"{name} ") for p in parts):
            parts.append(part)
    return "; ".join(parts)


@dataclass
class Job:
    name: str
    stages: list[Stage] = field(default_factory=list)


def build_jobs(config: dict[str, Any]) -> list[Job]:
    """Instantiate stages; a stage that expands around a barrier splits its job in two."""
    jobs: list[Job] = []
    for job_cfg in config["jobs"]:
        current = Job(job_cfg["name"])
        part = 1
        for entry in job_cfg["stages"]:
            where = entry.get("__source__", "<config>")
            cls = resolve_stage_class(entry["stage"], where)
            try:
                stage = cls(**copy.deepcopy(stage_params(entry)))
            except (TypeError, ValueError) as err:
                raise CorpusError(f"{where}: stage {entry['id']!r} ({cls.__name__}): {err}") from err
            stage.id = entry["id"]
            for piece in stage.expand():
                if isinstance(piece, Barrier):
                    jobs.append(current)
                    part += 1
                    current = Job(f"{job_cfg['name']}.{stage.id}" + (f"{part}" if part > 2 else ""))
                else:
                    current.stages.append(piece)
        jobs.append(current)
    return [job for job in jobs if job.stages]


__all__ = ["BARRIER", "Job", "build_jobs", "load_config", "list_presets"]
