"""Connections and routes declared in ``gateway.yaml`` (docs/routing.md).

The file is read in three steps, each reporting every problem it finds with its line and
column (PyYAML's node marks), never just the first:

1. ``parse``: YAML (a syntax error with its place; a key given twice in one mapping is an
   error, where PyYAML would silently keep the last);
2. the JSON Schema ``gateway/routing/gateway.schema.json`` (package data, read with
   ``importlib.resources``, so an installed wheel checks alike) (shape, names, ``env:NAME`` auth
   references, the failure-policy option types, schedules);
3. ``check``: what a schema cannot say: the role is one an installed adapter declares
   (``Wiring.routing_roles``) and, when ``adapter`` is given, that adapter's; the kinds are
   canonical record kinds or an adapter's own (``Wiring.routing_kinds``); a pull route names a
   source connection whose role reads (``Source``), a push route a destination whose role
   delivers (``Destination``, and carries the route's kinds); names are unique per tenant;
   every ``env:`` variable is set; a mapping file exists.

``load`` runs all three and raises ``GatewayConfigError`` (a ``ConfigError`` whose errors
are located ``FILE:LINE:COLUMN``). ``gateway.routing.repository.apply_config`` writes a
checked file to the store. The file is the one ``TESSERA_CONFIG`` names, else
``./gateway.yaml`` (``config_path``), the same the settings are read from.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .. import PROJECT_ROOT
from ..errors import ConfigError, ErrorDetail
from .protocol import Connection, Destination, Source

if TYPE_CHECKING:
    from ..wiring import Wiring

#: the JSON Schema of gateway.yaml: package data of ``gateway.routing`` (in the wheel)
SCHEMA_RESOURCE = "gateway.schema.json"
DEFAULT_TENANT = "default"
#: top-level keys of gateway.yaml that belong to the routing layer, not to the settings
ROUTING_KEYS = frozenset({"tenant", "connections", "routes"})
#: option names that would hold a secret: their values must be env: references too
SECRET_OPTION = re.compile(r"(secret|password|passwd|token|api_?key|private_?key)", re.I)
_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the file, where it is (1-based line and column; 0: the file)."""

    message: str
    line: int = 0
    column: int = 0

    def detail(self, path: Path | str) -> ErrorDetail:
        return ErrorDetail(self.message, location=f"{path}:{self.line}:{self.column}" if self.line else str(path))

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}" if self.line else self.message


class GatewayConfigError(ConfigError):
    """gateway.yaml is invalid; ``errors`` hold each problem as ``FILE:LINE:COLUMN``."""

    def __init__(self, path: Path | str, problems: list[Problem]) -> None:
        n = len(problems)
        super().__init__(f"{path}: {n} problem{'s' if n != 1 else ''} in the routing configuration",
                         errors=[p.detail(path) for p in problems])
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class ConnectionSpec:
    tenant: str
    name: str
    adapter: str
    role: str
    system: str
    base_url: str | None = None
    auth: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0

    def as_connection(self, id: uuid.UUID | None = None) -> Connection:
        return Connection(id or uuid.uuid5(uuid.NAMESPACE_URL, f"tessera:{self.tenant}:{self.name}"), self.tenant, self.name,
                          self.adapter, self.role, self.system, self.base_url, dict(self.auth), dict(self.options))


@dataclass(frozen=True)
class RouteSpec:
    tenant: str
    name: str
    mode: str
    kinds: tuple[str, ...]
    source: str | None = None
    destination: str | None = None
    orgs: tuple[str, ...] = ()
    mapping: str | None = None
    schedule_seconds: int | None = None
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass
class GatewayConfig:
    path: Path
    connections: list[ConnectionSpec] = field(default_factory=list)
    routes: list[RouteSpec] = field(default_factory=list)
    #: whether the file has a ``connections`` or ``routes`` key at all: a file that only holds
    #: settings leaves the store's routing alone (``apply_config``)
    declares_routing: bool = False


# --- where the file is -----------------------------------------------------------------------


def config_path(explicit: str | Path | None = None) -> Path | None:
    """``explicit``, else ``TESSERA_CONFIG``, else ``./gateway.yaml`` when it exists (None
    when there is none). A file named explicitly or by TESSERA_CONFIG must exist."""
    if explicit is not None:
        path = Path(explicit)
    elif os.environ.get("TESSERA_CONFIG"):
        path = Path(os.environ["TESSERA_CONFIG"])
    else:
        path = Path("gateway.yaml")
        return path if path.exists() else None
    if not path.exists():
        raise ConfigError(f"no configuration file {path}")
    return path


# --- 1. YAML with marks ----------------------------------------------------------------------

Path_ = tuple[str | int, ...]


@dataclass
class Parsed:
    data: Any
    #: JSON path -> (line, column) of the value there; ``keys``: of the mapping key
    marks: dict[Path_, tuple[int, int]]
    keys: dict[Path_, tuple[int, int]]

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """The mark of ``path``, or of its nearest ancestor the file has."""
        p = tuple(path)
        while True:
            if key and p in self.keys:
                return self.keys[p]
            if p in self.marks:
                return self.marks[p]
            if not p:
                return (1, 1)
            p = p[:-1]

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        line, col = self.where(path, key=key)
        return Problem(message, line, col)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def parse(text: str) -> tuple[Parsed | None, list[Problem]]:
    """YAML -> plain data with the place of every value; syntax errors and repeated keys."""
    loader = yaml.SafeLoader(text)
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        return None, [Problem(f"not valid YAML: {exc.problem or exc.context}", *where)]
    except yaml.YAMLError as exc:
        return None, [Problem(f"not valid YAML: {exc}")]
    finally:
        loader.dispose()
    parsed = Parsed(None, {}, {})

    def build(n: yaml.Node, path: Path_) -> Any:
        parsed.marks[path] = _mark(n)
        if isinstance(n, yaml.MappingNode):
            loader.flatten_mapping(n)
            out: dict[str, Any] = {}
            for key_node, value_node in n.value:
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    key = str(key)
                if key in out:
                    problems.append(Problem(f"{key!r} is given twice in this mapping", *_mark(key_node)))
                parsed.keys[path + (key,)] = _mark(key_node)
                out[key] = build(value_node, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(n.value)]
        return loader.construct_object(n, deep=True)

    if node is None:
        parsed.data = {}
        return parsed, []
    try:
        parsed.data = build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return None, [Problem(f"not valid YAML: {exc.problem}", *((mark.line + 1, mark.column + 1) if mark else (0, 0)))]
    return parsed, problems


# --- 2. the JSON Schema ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    from importlib.resources import files

    doc: dict[str, Any] = json.loads((files(__package__) / SCHEMA_RESOURCE).read_text(encoding="utf-8"))
    return doc


def _schema_problems(parsed: Parsed) -> list[Problem]:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    if not isinstance(parsed.data, dict):
        return [parsed.problem((), "expected a mapping at the top level (settings, tenant, connections, routes)")]
    validator = Draft202012Validator(schema())
    found: list[Problem] = []
    for err in sorted(validator.iter_errors(parsed.data), key=lambda e: parsed.where(tuple(e.absolute_path))):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties") or {})
            for extra in sorted(k for k in err.instance if k not in allowed):
                found.append(parsed.problem(path + (extra,), f"unknown key {extra!r}; allowed: {', '.join(sorted(allowed))}",
                                            key=True))
            continue
        if err.validator == "propertyNames":
            found.append(parsed.problem(path, f"{err.message} (a key here must be a name such as client_secret)"))
            continue
        message = err.message
        if err.validator == "pattern" and path and (len(path) >= 2 and path[-2] == "auth"):
            message = f"{path[-1]}: a secret is never written in gateway.yaml; reference an environment variable as env:NAME"
        elif err.validator == "oneOf" and path and path[-1] == "schedule":
            message = f"schedule {err.instance!r}: give seconds (900) or a duration such as 30s, 15m, 1h, 1d, 1h30m"
        found.append(parsed.problem(path, f"{_label(path)}{message}"))
    return found


def _settings_problems(parsed: Parsed) -> list[Problem]:
    """Keys that are neither routing keys nor settings (a typo such as ``route:`` would
    otherwise surface later as the settings loader's complaint, without a line)."""
    import difflib

    from ..config import _RENAMED_KEYS, Settings

    doc = parsed.data
    known = set(Settings.model_fields) | _RENAMED_KEYS
    found = []
    places: list[tuple[Path_, str, set[str]]] = []
    if isinstance(doc.get("gateway"), dict):
        places += [(("gateway", k), k, known) for k in doc["gateway"]]
        places += [((k,), k, set(ROUTING_KEYS) | {"gateway"}) for k in doc if k not in ROUTING_KEYS and k != "gateway"]
    else:
        places += [((k,), k, known | ROUTING_KEYS) for k in doc if k not in ROUTING_KEYS and k != "gateway"]
    for path, key, allowed in places:
        if key not in allowed and path == (key,) and key in known:
            found.append(parsed.problem(path, f"{key!r} is a setting: with a 'gateway:' section, it goes there (here it is ignored)", key=True))
        elif key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else " (the settings are in the README's Configuration)"
            found.append(parsed.problem(path, f"unknown key {key!r}{hint}", key=True))
    return found


def _label(path: Path_) -> str:
    return "" if not path else ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[") + ": "


def schedule_seconds(value: int | str | None) -> int | None:
    """``900`` / ``"15m"`` / ``"1h30m"`` -> seconds; None stays None (only on demand)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"schedule {value!r}: give seconds or a duration such as 15m")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if not re.fullmatch(r"([0-9]+[smhd])+", text):
        raise ConfigError(f"schedule {value!r}: give seconds or a duration such as 30s, 15m, 1h, 1d, 1h30m")
    return sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(text))


# --- 3. what the schema cannot say -----------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What a connection's role can do, learnt by building its object once (then closed)."""

    source: bool
    destination: bool
    #: the kinds a destination delivers (empty: any)
    kinds: frozenset[str]


def capabilities(factory: Any, spec: ConnectionSpec) -> Capabilities:
    """Build the role's object for ``spec`` (the adapter checks its options: a ``ConfigError``
    or any other exception says why not), note what it can do, and close it if it holds
    anything (an HTTP client's pool)."""
    obj = factory(spec.as_connection())
    try:
        return Capabilities(isinstance(obj, Source), isinstance(obj, Destination),
                            frozenset(getattr(obj, "kinds", ()) or ()) if isinstance(obj, Destination) else frozenset())
    finally:
        close = getattr(obj, "close", None)
        if callable(close):
            close()


def refusal(spec: ConnectionSpec, exc: Exception) -> str:
    """An adapter's refusal of a connection, naming the connection once."""
    said = str(getattr(exc, "detail", None) or exc)
    if said.startswith(f"connection {spec.name!r}"):
        return said
    return f"connection {spec.name!r}: {said}" if isinstance(exc, ConfigError) else \
        f"connection {spec.name!r}: the adapter refused it ({type(exc).__name__}: {said})"


def _specs(parsed: Parsed, roles: Mapping[str, tuple[str, Any]]) -> GatewayConfig:
    doc = parsed.data
    default_tenant = doc.get("tenant", DEFAULT_TENANT)
    config = GatewayConfig(Path("."), declares_routing="connections" in doc or "routes" in doc)
    for i, c in enumerate(doc.get("connections") or []):
        role = c["role"]
        adapter = c.get("adapter") or (roles[role][0] if role in roles else "")
        config.connections.append(ConnectionSpec(
            tenant=c.get("tenant", default_tenant), name=c["name"], adapter=adapter, role=role, system=c.get("system", c["name"]),
            base_url=c.get("base_url"), auth=dict(c.get("auth") or {}), options=dict(c.get("options") or {}),
            line=parsed.where(("connections", i))[0]))
    for i, r in enumerate(doc.get("routes") or []):
        config.routes.append(RouteSpec(
            tenant=r.get("tenant", default_tenant), name=r["name"], mode=r["mode"], kinds=tuple(r["kinds"]),
            source=r.get("source"), destination=r.get("destination"), orgs=tuple(r.get("orgs") or ()), mapping=r.get("mapping"),
            schedule_seconds=schedule_seconds(r.get("schedule")), enabled=r.get("enabled", True), options=dict(r.get("options") or {}),
            line=parsed.where(("routes", i))[0]))
    return config


def check(parsed: Parsed, config: GatewayConfig, wiring: Wiring, environ: Mapping[str, str] | None = None) -> list[Problem]:
    """The semantic checks (module docstring) of a file that passed its schema."""
    from ..model import RECORD_TYPES

    env = os.environ if environ is None else environ
    roles = wiring.routing_roles
    kinds_known = set(RECORD_TYPES) | set(wiring.routing_kinds)
    problems: list[Problem] = []
    by_name: dict[tuple[str, str], tuple[int, ConnectionSpec]] = {}
    made: dict[tuple[str, str], Capabilities] = {}
    for i, c in enumerate(config.connections):
        at = ("connections", i)
        if (c.tenant, c.name) in by_name:
            problems.append(parsed.problem(at + ("name",), f"connection {c.name!r} is declared twice for tenant {c.tenant!r}"))
            continue
        by_name[(c.tenant, c.name)] = (i, c)
        if c.role not in roles:
            known = ", ".join(sorted(roles)) or "none: no installed adapter declares a connection role"
            problems.append(parsed.problem(at + ("role",), f"unknown connection role {c.role!r}; known: {known}"))
        elif c.adapter != roles[c.role][0]:
            problems.append(parsed.problem(at + ("adapter",),
                                           f"adapter {c.adapter!r} does not declare role {c.role!r} (adapter {roles[c.role][0]!r} does)"))
        for key, ref in c.auth.items():
            name = ref[4:]
            if name not in env:
                problems.append(parsed.problem(at + ("auth", key), f"auth {key!r}: the environment variable {name} is not set"))
        for key, value in c.options.items():
            if isinstance(value, str) and value.startswith("env:"):
                if value[4:] not in env:
                    problems.append(parsed.problem(at + ("options", key), f"option {key!r}: the environment variable {value[4:]} is not set"))
            elif SECRET_OPTION.search(key) and isinstance(value, str):
                problems.append(parsed.problem(at + ("options", key),
                                               f"option {key!r} looks like a secret: reference an environment variable as env:NAME"))
        if c.role in roles and c.adapter == roles[c.role][0]:
            try:
                made[(c.tenant, c.name)] = capabilities(roles[c.role][1], c)
            except Exception as exc:  # an adapter's factory refusing its options: report it, never crash the check
                problems.append(parsed.problem(at, refusal(c, exc)))
    seen_routes: set[tuple[str, str]] = set()
    for i, r in enumerate(config.routes):
        at = ("routes", i)
        if (r.tenant, r.name) in seen_routes:
            problems.append(parsed.problem(at + ("name",), f"route {r.name!r} is declared twice for tenant {r.tenant!r}"))
        seen_routes.add((r.tenant, r.name))
        unknown = [k for k in r.kinds if k not in kinds_known]
        for k in unknown:
            problems.append(parsed.problem(at + ("kinds", r.kinds.index(k)), f"unknown record kind {k!r}; known: {', '.join(sorted(kinds_known))}"))
        want, other = ("source", "destination") if r.mode == "pull" else ("destination", "source")
        ref = getattr(r, want)
        if getattr(r, other) is not None:
            problems.append(parsed.problem(at + (other,), f"a {r.mode} route has no {other}"
                                           + (" (this Tessera's store is where it writes)" if r.mode == "pull" else
                                              " (it delivers what changes in this Tessera's store)")))
        if ref is None:
            problems.append(parsed.problem(at, f"a {r.mode} route needs a {want} connection"))
        elif (r.tenant, ref) not in by_name:
            problems.append(parsed.problem(at + (want,), f"no connection {ref!r} for tenant {r.tenant!r} in this file"))
        else:
            can = made.get((r.tenant, ref))
            if can is not None:
                if r.mode == "pull" and not can.source:
                    problems.append(parsed.problem(at + (want,), f"connection {ref!r} (role {by_name[(r.tenant, ref)][1].role}) cannot be pulled from"))
                if r.mode == "push":
                    if not can.destination:
                        problems.append(parsed.problem(at + (want,), f"connection {ref!r} (role {by_name[(r.tenant, ref)][1].role}) cannot be delivered to"))
                    else:
                        carried = can.kinds
                        for k in r.kinds:
                            if carried and k not in carried and k not in unknown:
                                problems.append(parsed.problem(at + ("kinds", r.kinds.index(k)),
                                                               f"connection {ref!r} does not deliver {k!r}; it delivers: {', '.join(sorted(carried))}"))
        if r.mode == "push" and r.schedule_seconds is not None:
            problems.append(parsed.problem(at + ("schedule",), "a push route delivers on change and has no schedule"))
        if r.mapping and not _mapping_file(r.mapping, config.path).exists():
            problems.append(parsed.problem(at + ("mapping",), f"no mapping file {r.mapping!r} (under mappings/ or next to this file)"))
    return problems


def _mapping_file(name: str, config_file: Path) -> Path:
    local = (config_file.parent / name)
    return local if local.exists() else PROJECT_ROOT / "mappings" / name


# --- all three -------------------------------------------------------------------------------


def read(path: Path | str, wiring: Wiring | None = None, environ: Mapping[str, str] | None = None) -> tuple[GatewayConfig | None, list[Problem]]:
    """Parse, validate and check ``path``: the configuration (None when it cannot be read
    that far) and every problem, in file order."""
    if wiring is None:
        from ..wiring import default

        wiring = default()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(f"cannot read the file: {exc}")]
    parsed, problems = parse(text)
    if parsed is None:
        return None, problems
    problems += _schema_problems(parsed)
    if not problems:
        problems += _settings_problems(parsed)
    if problems:
        return None, sorted(problems, key=lambda p: (p.line, p.column))
    config = _specs(parsed, wiring.routing_roles)
    config.path = path
    problems = check(parsed, config, wiring, environ)
    return config, sorted(problems, key=lambda p: (p.line, p.column))


def load(path: Path | str | None = None, wiring: Wiring | None = None, environ: Mapping[str, str] | None = None) -> GatewayConfig | None:
    """The checked configuration of ``path`` (default: ``config_path()``; None when there is
    no file); ``GatewayConfigError`` listing every problem otherwise."""
    found = config_path(path)
    if found is None:
        return None
    config, problems = read(found, wiring, environ)
    if problems or config is None:
        raise GatewayConfigError(found, problems)
    return config


__all__ = [
    "ROUTING_KEYS", "SECRET_OPTION", "Capabilities", "ConnectionSpec", "GatewayConfig", "GatewayConfigError", "Problem", "RouteSpec", "check", "config_path",
    "capabilities", "load", "parse", "read", "refusal", "schedule_seconds", "schema",
]
