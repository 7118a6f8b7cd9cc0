"""Topics as code: `topics/topics.yaml` → typed specs → a plan → the cluster.

Loading and planning are pure (the cluster's state comes in as data); `apply_topics`,
`ensure_topics` and `verify_copartitioning` are the imperative shell. rtim creates missing
topics and may fix `cleanup.policy` / `retention.ms`; it never deletes or re-creates a topic,
so a differing partition count or replication factor is only reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from rtim.errors import ConfigError, TopicError
from rtim.kafka.admin import (
    DEFAULT_TIMEOUT,
    TopicState,
    admin_client,
    alter_topic_config,
    create_topics,
    describe_topics,
    list_topics,
)
from rtim.paths import contract_dir
from rtim.settings import Settings

__all__ = [
    "CUSTOMER_GROUP",
    "Drift",
    "TopicCatalog",
    "TopicPlan",
    "TopicResult",
    "TopicSpec",
    "TopicState",
    "apply_topics",
    "default_topics_path",
    "ensure_topics",
    "format_retention",
    "load_topics",
    "parse_topics",
    "physical_name",
    "plan_topics",
    "problem_summary",
    "read_plan",
    "verify_copartitioning",
]

CUSTOMER_GROUP = "customer"
"""The co-partition group of every topic keyed by customer id (the worker's inputs + state)."""

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_POLICIES = {"delete": "delete", "compact": "compact", "compact,delete": "compact,delete",
             "delete,compact": "compact,delete"}  # fmt: skip
_TOP_KEYS = ("defaults", "co_partition_groups", "topics")
_DEFAULT_KEYS = ("partitions", "replication_factor", "retention_ms", "cleanup_policy")
_TOPIC_KEYS = ("name", "group", "partitions", "replication_factor", "retention_ms",
               "cleanup_policy", "key", "schema")  # fmt: skip


# --- specs -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One declared topic (logical name; the physical name adds RTIM_TOPIC_PREFIX)."""

    name: str
    partitions: int
    replication_factor: int
    retention_ms: int
    cleanup_policy: str
    schema: str
    key: str
    group: str | None = None

    def physical(self, prefix: str) -> str:
        """The topic's name on the cluster."""
        return physical_name(prefix, self.name)

    def config(self) -> dict[str, str]:
        """The topic configs rtim sets and checks."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


@dataclass(frozen=True, slots=True)
class TopicCatalog:
    """Every declared topic, in file order, plus the co-partition groups."""

    path: Path
    topics: tuple[TopicSpec, ...]
    groups: Mapping[str, int]

    def __iter__(self) -> Iterator[TopicSpec]:
        return iter(self.topics)

    def __len__(self) -> int:
        return len(self.topics)

    @property
    def names(self) -> tuple[str, ...]:
        """Logical names in file order."""
        return tuple(spec.name for spec in self.topics)

    def with_max_partitions(self, most: int) -> TopicCatalog:
        """The same catalog with at most `most` partitions per topic (co-partitioning kept)."""
        if most < 1:
            raise ConfigError(f"partitions must be at least 1, got {most}")
        return TopicCatalog(
            self.path,
            tuple(replace(t, partitions=min(t.partitions, most)) for t in self.topics),
            {name: min(count, most) for name, count in self.groups.items()},
        )

    def get(self, name: str) -> TopicSpec:
        """The spec of logical topic `name`; TopicError if it is not declared."""
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise TopicError(f"topic {name!r} is not declared in {self.path}")

    def group(self, group: str) -> tuple[TopicSpec, ...]:
        """The topics of a co-partition group; TopicError if the group is unknown."""
        if group not in self.groups:
            raise TopicError(f"co-partition group {group!r} is not declared in {self.path}")
        return tuple(spec for spec in self.topics if spec.group == group)


def physical_name(prefix: str, logical: str) -> str:
    """prefix + logical, checked to be a valid Kafka topic name."""
    name = f"{prefix}{logical}"
    if not _NAME.match(name) or name in (".", ".."):
        raise ConfigError(
            f"topic name {name!r} is invalid (RTIM_TOPIC_PREFIX={prefix!r}): use letters, "
            "digits, '.', '_' and '-', at most 249 characters"
        )
    return name


def default_topics_path() -> Path:
    """`topics/topics.yaml` shipped with rtim."""
    return contract_dir("topics") / "topics.yaml"


# --- loading and validation ------------------------------------------------------------------
class _Map(dict[str, Any]):
    """A YAML mapping that remembers its line (1-based)."""

    line: int = 0


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Errors:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, where: Any, message: str) -> None:
        line = getattr(where, "line", 0)
        self.items.append(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")

    def raise_if_any(self) -> None:
        if len(self.items) == 1:
            raise ConfigError(self.items[0])
        if self.items:
            raise ConfigError(f"{len(self.items)} errors: " + "; ".join(self.items))


def _int(value: Any, minimum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return None
    return value


def _check_keys(
    errors: _Errors, mapping: dict[str, Any], allowed: tuple[str, ...], what: str
) -> None:
    for key in mapping:
        if key not in allowed:
            errors.add(mapping, f"{what}: unknown key {key!r} (allowed: {', '.join(allowed)})")


def _setting(errors: _Errors, where: dict[str, Any], what: str, key: str, value: Any) -> Any:
    """Validate one of partitions / replication_factor / retention_ms / cleanup_policy."""
    if key in ("partitions", "replication_factor"):
        number = _int(value, 1)
        if number is None:
            errors.add(where, f"{what}: {key} must be a whole number ≥ 1, got {value!r}")
        return number
    if key == "retention_ms":
        number = _int(value, -1)
        if number is None or number == 0:
            errors.add(
                where,
                f"{what}: retention_ms must be -1 (forever) or a positive number of "
                f"milliseconds, got {value!r}",
            )
            return None
        return number
    policy = _POLICIES.get(str(value).replace(" ", "")) if isinstance(value, str) else None
    if policy is None:
        errors.add(
            where, f"{what}: cleanup_policy must be delete, compact or 'compact,delete', "
            f"got {value!r}"
        )  # fmt: skip
    return policy


def parse_topics(data: Any, path: Path) -> TopicCatalog:
    """Validate parsed YAML (as loaded by `load_topics`) into a catalog; ConfigError if wrong.

    Errors name the file, the line and the topic; all problems are reported at once.
    """
    errors = _Errors(path)
    if not isinstance(data, dict):
        errors.add(data, "expected a mapping with `topics:` at the top")
        errors.raise_if_any()
    root: _Map = data if isinstance(data, _Map) else _Map(data)
    _check_keys(errors, root, _TOP_KEYS, "top level")

    defaults: dict[str, Any] = {}
    raw_defaults = root.get("defaults") or _Map()
    if not isinstance(raw_defaults, dict):
        errors.add(root, "`defaults` must be a mapping")
        raw_defaults = _Map()
    else:
        _check_keys(errors, raw_defaults, _DEFAULT_KEYS, "defaults")
        for key in _DEFAULT_KEYS:
            if key in raw_defaults:
                defaults[key] = _setting(errors, raw_defaults, "defaults", key, raw_defaults[key])

    groups: dict[str, int] = {}
    raw_groups = root.get("co_partition_groups") or _Map()
    if not isinstance(raw_groups, dict):
        errors.add(root, "`co_partition_groups` must map group names to partition counts")
    else:
        for group, count in raw_groups.items():
            number = _int(count, 1)
            if not isinstance(group, str) or number is None:
                errors.add(
                    raw_groups,
                    f"co_partition_groups: {group!r} must map to a whole number ≥ 1, got {count!r}",
                )
            else:
                groups[group] = number

    raw_topics = root.get("topics")
    if not isinstance(raw_topics, list) or not raw_topics:
        errors.add(root, "`topics` must be a non-empty list of topic declarations")
        raw_topics = []

    specs: list[TopicSpec] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_topics, start=1):
        if not isinstance(raw, dict):
            errors.add(raw_topics, f"topic #{index}: expected a mapping, got {raw!r}")
            continue
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            errors.add(
                raw,
                f"topic #{index}: `name` must be a topic name (letters, digits, '.', '_', '-'), "
                f"got {name!r}",
            )
            continue
        what = f"topic {name!r}"
        if name in seen:
            errors.add(raw, f"{what}: declared twice")
        seen.add(name)
        _check_keys(errors, raw, _TOPIC_KEYS, what)

        values: dict[str, Any] = {}
        for key in ("replication_factor", "retention_ms", "cleanup_policy"):
            if key in raw:
                values[key] = _setting(errors, raw, what, key, raw[key])
            elif key in defaults:
                values[key] = defaults[key]
            else:
                errors.add(raw, f"{what}: missing `{key}` (and no default in `defaults`)")

        group = raw.get("group")
        if group is not None:
            if "partitions" in raw:
                errors.add(
                    raw,
                    f"{what}: set either `group` (the group's partition count applies) or "
                    "`partitions`, not both",
                )
            if group not in groups:
                known = ", ".join(groups) or "none declared"
                errors.add(raw, f"{what}: unknown co-partition group {group!r} (known: {known})")
            values["partitions"] = groups.get(group)
        elif "partitions" in raw:
            values["partitions"] = _setting(errors, raw, what, "partitions", raw["partitions"])
        elif "partitions" in defaults:
            values["partitions"] = defaults["partitions"]
        else:
            errors.add(raw, f"{what}: missing `partitions` (or a co-partition `group`)")

        for key in ("key", "schema"):
            text = raw.get(key)
            if not isinstance(text, str) or not text.strip():
                errors.add(raw, f"{what}: `{key}` must be a non-empty string, got {text!r}")
                values[key] = None
            else:
                values[key] = text.strip()

        if any(value is None for value in values.values()) or len(values) < 6:
            continue
        specs.append(TopicSpec(name=name, group=group, **values))

    errors.raise_if_any()
    return TopicCatalog(path=path, topics=tuple(specs), groups=dict(groups))


def load_topics(path: Path | str | None = None) -> TopicCatalog:
    """Load and validate a topics file (default: `default_topics_path()`)."""
    file = Path(path) if path is not None else default_topics_path()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read topics file {file}: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: invalid YAML: {exc}") from None
    return parse_topics(data, file)


# --- planning (pure) -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Drift:
    """One way an existing topic differs from its declaration."""

    setting: str  # partitions | replication_factor | cleanup.policy | retention.ms
    declared: str
    actual: str | None  # None: not set on the topic
    fixable: bool  # `apply --fix-config` can change it in place

    def describe(self) -> str:
        """One human sentence, with what to do about it."""
        if self.setting == "partitions":
            return (
                f"{self.actual} partitions on the cluster, {self.declared} declared — Kafka "
                "cannot change this without moving keys to other partitions: re-create the "
                "topic (its data is lost) or declare the cluster's count"
            )
        if self.setting == "replication_factor":
            return (
                f"replication factor {self.actual} on the cluster, {self.declared} declared — "
                "reassign the replicas (kafka-reassign-partitions) or declare the cluster's value"
            )
        actual = "not set" if self.actual is None else self.actual
        return (
            f"{self.setting} is {actual} on the cluster, {self.declared} declared — "
            "`rtim topics apply --fix-config` sets it"
        )


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """What `apply` has to do for one declared topic."""

    spec: TopicSpec
    physical: str
    state: TopicState | None  # None: missing on the cluster
    drifts: tuple[Drift, ...] = ()

    @property
    def action(self) -> Literal["create", "ok", "drift"]:
        """create (missing), ok (matches), or drift (differs)."""
        if self.state is None:
            return "create"
        return "drift" if self.drifts else "ok"

    @property
    def config_fixes(self) -> dict[str, str]:
        """The configs `apply --fix-config` would set."""
        return {d.setting: d.declared for d in self.drifts if d.fixable}


def _same_policy(a: str, b: str) -> bool:
    return {p.strip() for p in a.split(",")} == {p.strip() for p in b.split(",")}


def _same_ms(a: str, b: str) -> bool:
    try:
        return int(a) == int(b)
    except ValueError:
        return a == b


def _drifts(spec: TopicSpec, state: TopicState) -> tuple[Drift, ...]:
    drifts: list[Drift] = []
    if state.partitions != spec.partitions:
        drifts.append(Drift("partitions", str(spec.partitions), str(state.partitions), False))
    if state.replication_factor != spec.replication_factor:
        drifts.append(
            Drift(
                "replication_factor",
                str(spec.replication_factor),
                str(state.replication_factor),
                False,
            )
        )
    if state.config is not None:  # None: configs not fetched, nothing to compare
        declared = spec.config()
        actual_policy = state.config.get("cleanup.policy")
        if actual_policy is None or not _same_policy(actual_policy, declared["cleanup.policy"]):
            drifts.append(Drift("cleanup.policy", declared["cleanup.policy"], actual_policy, True))
        actual_ms = state.config.get("retention.ms")
        if actual_ms is None or not _same_ms(actual_ms, declared["retention.ms"]):
            drifts.append(Drift("retention.ms", declared["retention.ms"], actual_ms, True))
    return tuple(drifts)


def plan_topics(
    specs: Iterable[TopicSpec], existing: Mapping[str, TopicState], prefix: str = ""
) -> list[TopicPlan]:
    """Compare declared topics with the cluster's (`existing`, keyed by physical name)."""
    plans: list[TopicPlan] = []
    for spec in specs:
        physical = spec.physical(prefix)
        state = existing.get(physical)
        drifts = _drifts(spec, state) if state is not None else ()
        plans.append(TopicPlan(spec, physical, state, drifts))
    return plans


def format_retention(ms: int) -> str:
    """7 days → ``7d``; -1 → ``forever``."""
    if ms < 0:
        return "forever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# --- the shell -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TopicResult:
    """What `apply_topics` did for one topic."""

    plan: TopicPlan
    status: Literal["created", "ok", "fixed", "drift", "failed"]
    detail: str = ""

    @property
    def problem(self) -> bool:
        """True when the topic still differs from its declaration or could not be handled."""
        return self.status in ("drift", "failed")

    def line(self) -> str:
        """``<physical>: created`` / ``ok`` / ``DRIFT: …`` — one line per topic."""
        label = {"drift": "DRIFT", "failed": "FAILED"}.get(self.status, self.status)
        return f"{self.plan.physical}: {label}" + (f": {self.detail}" if self.detail else "")


def read_plan(
    admin: AdminClient, catalog: Iterable[TopicSpec], prefix: str, *, timeout: float | None = None
) -> list[TopicPlan]:
    """Fetch the declared topics' state from the cluster and plan them."""
    specs = list(catalog)
    existing = describe_topics(admin, [s.physical(prefix) for s in specs], timeout=timeout)
    return plan_topics(specs, existing, prefix)


def _created_detail(spec: TopicSpec) -> str:
    retention = format_retention(spec.retention_ms)
    unit = "partition" if spec.partitions == 1 else "partitions"
    return f"{spec.partitions} {unit}, {spec.cleanup_policy}, retention {retention}"


def apply_topics(
    admin: AdminClient,
    catalog: Iterable[TopicSpec],
    prefix: str,
    *,
    fix_config: bool = False,
    timeout: float | None = None,
) -> list[TopicResult]:
    """Create the missing topics; report drift; with `fix_config`, set differing configs.

    Never deletes or re-creates a topic. Idempotent; safe to race with another creator.
    """
    specs = list(catalog)
    plans = read_plan(admin, specs, prefix, timeout=timeout)
    missing = [p for p in plans if p.action == "create"]
    errors = create_topics(
        admin,
        [
            (p.physical, p.spec.partitions, p.spec.replication_factor, p.spec.config())
            for p in missing
        ],
        timeout=timeout,
    )
    raced = [p.spec for p in missing if _already_exists(errors.get(p.physical))]
    replanned = (
        {p.physical: p for p in read_plan(admin, raced, prefix, timeout=timeout)} if raced else {}
    )

    results: list[TopicResult] = []
    for plan in plans:
        if plan.action != "create":
            results.append(_settle(admin, plan, fix_config, timeout))
        elif (error := errors.get(plan.physical)) is None:
            results.append(TopicResult(plan, "created", _created_detail(plan.spec)))
        elif plan.physical in replanned:  # created meanwhile by someone else: compare it
            results.append(_settle(admin, replanned[plan.physical], fix_config, timeout))
        else:
            results.append(TopicResult(plan, "failed", f"{error.str()} ({error.name()})"))
    return results


def _already_exists(error: KafkaError | None) -> bool:
    return error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS


def _settle(
    admin: AdminClient, plan: TopicPlan, fix_config: bool, timeout: float | None
) -> TopicResult:
    if plan.action == "ok":
        return TopicResult(plan, "ok")
    fixes = plan.config_fixes
    remaining = list(plan.drifts)
    notes: list[str] = []
    if fix_config and fixes:
        try:
            alter_topic_config(admin, plan.physical, fixes, timeout=timeout)
        except TopicError as exc:
            notes.append(str(exc))
        else:
            remaining = [d for d in remaining if not d.fixable]
            notes.append("set " + ", ".join(f"{k}={v}" for k, v in fixes.items()))
    if not remaining:
        return TopicResult(plan, "fixed", "; ".join(notes))
    detail = "; ".join([d.describe() for d in remaining] + notes)
    return TopicResult(plan, "drift", detail)


def problem_summary(results: list[TopicResult], path: Path | None = None) -> str:
    """One line summing up the drifted and failed topics of an `apply_topics` run."""
    drifted = sum(r.status == "drift" for r in results)
    failed = sum(r.status == "failed" for r in results)
    parts = []
    if drifted:
        parts.append(
            f"{drifted} topic differs from its declaration"
            if drifted == 1
            else f"{drifted} topics differ from their declaration"
        )
    if failed:
        parts.append(f"{failed} could not be created")
    where = f" in {path}" if path is not None else ""
    return (
        f"{' and '.join(parts)} ({len(results)} declared{where}): see the DRIFT/FAILED lines; "
        "rtim never deletes or re-creates topics"
    )


def ensure_topics(
    settings: Settings,
    *,
    path: Path | str | None = None,
    fix_config: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    max_partitions: int | None = None,
) -> list[TopicResult]:
    """Apply the declared topics under ``settings.topic_prefix``; TopicError on any drift.

    The one call `rtim dev`, the tests and scripts need before producing or consuming.
    `max_partitions` caps every topic's partition count (`rtim dev` on its embedded broker).
    """
    catalog = load_topics(path)
    if max_partitions is not None:
        catalog = catalog.with_max_partitions(max_partitions)
    admin = admin_client(settings, timeout=timeout)
    results = apply_topics(admin, catalog, settings.topic_prefix, fix_config=fix_config)
    problems = [r for r in results if r.problem]
    if problems:
        first = problems[0].line()
        raise TopicError(f"{problem_summary(results, catalog.path)} — first: {first}")
    return results


def verify_copartitioning(
    admin: AdminClient,
    settings: Settings,
    *,
    group: str = CUSTOMER_GROUP,
    catalog: TopicCatalog | None = None,
    timeout: float | None = None,
) -> int:
    """Check that a co-partition group's topics exist with one partition count; return it.

    The cluster's count is what matters to partition assignment, so it is returned even when it
    differs from the declared count (`rtim topics diff` reports that). TopicError otherwise.
    """
    specs = (catalog or load_topics()).group(group)
    if not specs:
        raise TopicError(f"co-partition group {group!r} has no topics")
    existing = list_topics(admin, timeout=timeout)
    names = [spec.physical(settings.topic_prefix) for spec in specs]
    missing = [name for name in names if name not in existing]
    if missing:
        raise TopicError(
            f"{len(missing)} topic(s) of co-partition group {group!r} missing on the cluster "
            f"at {settings.broker}: {', '.join(missing)} — run `rtim topics apply`"
        )
    counts = {name: existing[name].partitions for name in names}
    if len(set(counts.values())) != 1:
        listing = ", ".join(f"{name}={count}" for name, count in counts.items())
        raise TopicError(
            f"co-partition group {group!r} is broken: partition counts differ ({listing}); "
            "every topic of the group needs the same count, or a customer's events and state "
            "land on different workers"
        )
    return next(iter(counts.values()))
