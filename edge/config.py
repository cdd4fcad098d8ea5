"""The site configuration: one TOML file a site, loaded into typed, frozen objects.

Every problem is reported, not guessed: ``load_site`` collects all errors and
raises ``ConfigInvalid`` whose lines read ``FILE:LINE: key: message``. The
format is documented in docs/site-config.md; the device/point rules that need
more than a type check (units by name, overlapping registers, limits a type
cannot hold) live in ``edge.config_rules``.

Relative paths in the file resolve against the file's own folder; for the
embedded default sites (package data) they resolve against the working folder.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.tomlpos import key_lines, line_of

if TYPE_CHECKING:
    from edge.control.inputs import Tariff
    from edge.control.plant import PlantModel

__all__ = [
    "CliConfig", "ConfigError", "ConfigInvalid", "ControlConfig", "DeviceConfig",
    "HeartbeatConfig", "Limits", "MetricsConfig", "MqttConfig", "OpcUaSecurity",
    "OpcUaSubscription", "PointConfig", "SiteConfig", "StoreConfig", "TrustedKey", "embedded_site_path", "load_site",
]

NAME_RE = re.compile(r"^[a-z0-9_]+$")
SITE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class ConfigError:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


class ConfigInvalid(Exception):
    """A site file that cannot be used; ``errors`` holds every problem found."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


# --------------------------------------------------------------------------- typed config


@dataclass(frozen=True, slots=True)
class Limits:
    """The clamp of a writable point, in engineering units (ramp in units per second)."""

    min: float
    max: float
    ramp_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class PointConfig:
    name: str
    unit: str
    access: str = "r"  # r | rw | w
    deadband: float = 0.0
    limits: Limits | None = None
    default: float | None = None
    # modbus
    address: int | None = None
    table: str = "holding"
    type: str = "uint16"
    order: str = "ABCD"
    bit: int | None = None
    length: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    sf_address: int | None = None  # SunSpec: the int16 scale-factor register (10**sf)
    # opcua
    node: str | None = None

    @property
    def writable(self) -> bool:
        return self.access in ("rw", "w")


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    point: str
    period_ms: int = 1000


@dataclass(frozen=True, slots=True)
class OpcUaSecurity:
    policy: str = "None"  # None | Basic256Sha256 | Aes256_Sha256_RsaPss
    mode: str = "None"  # None | Sign | SignAndEncrypt
    cert: Path | None = None
    key: Path | None = None
    username: str = ""
    password_file: Path | None = None


@dataclass(frozen=True, slots=True)
class OpcUaSubscription:
    publishing_ms: int = 200
    sampling_ms: int = 100


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    name: str
    protocol: str  # modbus | opcua
    endpoint: str
    points: tuple[PointConfig, ...]
    unit: int = 1
    poll_ms: int = 500
    timeout_ms: int = 500
    max_gap: int = 8
    sunspec: bool = False
    heartbeat: HeartbeatConfig | None = None
    namespace_uri: str = ""
    security: OpcUaSecurity = field(default_factory=OpcUaSecurity)
    subscription: OpcUaSubscription | None = None

    def point(self, name: str) -> PointConfig | None:
        return next((p for p in self.points if p.name == name), None)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path
    max_bytes: int = 2_000_000_000
    retention_days: int = 400
    keyframe_s: float = 300.0


@dataclass(frozen=True, slots=True)
class ControlConfig:
    tick_s: float = 1.0
    step_min: int = 15
    horizon_h: float = 24.0
    mode: str = "auto"
    stale_after_s: float = 5.0
    # stored heat and cooling planned at P50 + this x (P90 - P50) (ControllerConfig)
    store_margin_frac: float = 0.4
    # PV and wind planned at P50 + this x (P90 - P50) where the park could be export-limited
    renewable_margin_frac: float = 1.0
    # a heat forecast's miss carried into later steps halving every this many hours; None:
    # as every other forecast's (ControllerConfig.heat_carry_half_life_h)
    heat_carry_half_life_h: float | None = None
    # the QP's steps: (hours, multiple of step_min) spans from now, the last to the
    # horizon's end; None: the controller's default (qp.GRADED)
    layout: tuple[tuple[float, int], ...] | None = None
    # between two step periods, step 0 runs to the period's end and the later steps keep to
    # the periods (ControllerConfig.align_steps)
    align_steps: bool = False

    def planning(self) -> dict[str, Any]:
        """The keys that shape the plan, as ``ControllerConfig`` keywords: one list for the
        daemon (``runner.controller_config``), the evaluation harness and the tests' parks
        (``control.scenario.park``). The step layout only where the site gives one."""
        out: dict[str, Any] = {"horizon_h": self.horizon_h, "store_margin_frac": self.store_margin_frac,
                               "renewable_margin_frac": self.renewable_margin_frac,
                               "heat_carry_half_life_h": self.heat_carry_half_life_h,
                               "align_steps": self.align_steps}
        if self.layout is not None:
            out["layout"] = self.layout
        return out


@dataclass(frozen=True, slots=True)
class MqttConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_id: str = ""
    keepalive_s: int = 30


@dataclass(frozen=True, slots=True)
class TrustedKey:
    key_id: str
    public_key: str  # a PEM file path (resolved) or base64 of the raw 32-byte key


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9108"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


@dataclass(frozen=True, slots=True)
class CliConfig:
    socket: Path


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """A whole site. ``assets`` is the controller's energy model, kept raw here and
    parsed by edge.control (which reports its own key paths)."""

    file: Path
    id: str
    timezone: str
    name: str
    country: str
    store: StoreConfig
    control: ControlConfig
    mqtt: MqttConfig
    trusted_keys: tuple[TrustedKey, ...]
    metrics: MetricsConfig
    cli: CliConfig
    tariff: Tariff | None  # the site's own time-of-use tariff, parsed once by edge.control
    devices: tuple[DeviceConfig, ...]
    assets: Mapping[str, Any]
    plant: PlantModel | None
    raw: Mapping[str, Any]
    latitude: float | None = None      # degrees north; the forecasters' solar geometry
    longitude: float | None = None     # degrees east

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def device(self, name: str) -> DeviceConfig | None:
        return next((d for d in self.devices if d.name == name), None)

    def find_point(self, key: str) -> tuple[DeviceConfig, PointConfig] | None:
        """``device.point`` to its configs, or None."""
        dev_name, _, pt_name = key.partition(".")
        dev = self.device(dev_name)
        pt = dev.point(pt_name) if dev else None
        return (dev, pt) if dev and pt else None


# --------------------------------------------------------------------------- reading fields


class _Reader:
    """Collects errors while pulling typed fields out of nested dicts."""

    def __init__(self, file: str, lines: dict[str, int], base_dir: Path) -> None:
        self.file = file
        self.lines = lines
        self.base_dir = base_dir
        self.errors: list[ConfigError] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(ConfigError(self.file, line_of(self.lines, key), key, message))

    def table(self, parent: Mapping[str, Any], name: str, path: str) -> dict[str, Any]:
        value = parent.get(name, {})
        if not isinstance(value, dict):
            self.error(path, f"must be a table, got {value!r}")
            return {}
        return value

    def known(self, table: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                hint = _closest(key, allowed)
                self.error(
                    f"{path}.{key}" if path else key,
                    "unknown key" + (f" (did you mean '{hint}'?)" if hint else ""),
                )

    def get(
        self, table: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...],
        default: Any = None, *, required: bool = False,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in table:
            if required:
                self.error(full, "missing (required)")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML integers are acceptable where a float is expected; booleans never are numbers.
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            self.error(full, f"must be {_kind_name(kinds)}, got {value!r}")
            return default
        if not isinstance(value, kinds):
            self.error(full, f"must be {_kind_name(kinds)}, got {value!r}")
            return default
        if check is not None and (problem := check(value)) is not None:
            self.error(full, f"{problem}, got {value!r}")
            return default
        return value

    def path(self, value: str | None) -> Path | None:
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "an array", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _closest(word: str, choices: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.75)
    return match[0] if match else None


def positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}"

    return check


def _valid_tz(v: Any) -> str | None:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone"
    return None


def _listen(v: Any) -> str | None:
    _host, sep, port = str(v).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be host:port"
    return None


# --------------------------------------------------------------------------- sections


def _site_section(r: _Reader, doc: Mapping[str, Any]) -> tuple[str, str, str, str]:
    t = r.table(doc, "site", "site")
    if "site" not in doc:
        r.error("site", "missing (required): [site] with id and timezone")
    r.known(t, "site", {"id", "timezone", "name", "country", "latitude", "longitude"})
    site_id = r.get(t, "id", "site", str, "", required=True,
                    check=lambda v: None if SITE_ID_RE.match(v) else "must match [a-z0-9-]+")
    tz = r.get(t, "timezone", "site", str, "UTC", required=True, check=_valid_tz)
    return site_id, tz, r.get(t, "name", "site", str, site_id), r.get(t, "country", "site", str, "")


def _store_section(r: _Reader, doc: Mapping[str, Any], site_id: str) -> StoreConfig:
    t = r.table(doc, "store", "store")
    r.known(t, "store", {"path", "max_bytes", "retention_days", "keyframe_s"})
    path = r.path(r.get(t, "path", "store", str, f"var/{site_id or 'site'}.db"))
    assert path is not None
    return StoreConfig(
        path=path,
        max_bytes=r.get(t, "max_bytes", "store", int, 2_000_000_000,
                        check=lambda v: None if v >= 1_000_000 else "must be >= 1000000 bytes"),
        retention_days=r.get(t, "retention_days", "store", int, 400, check=positive),
        keyframe_s=r.get(t, "keyframe_s", "store", float, 300.0, check=positive),
    )


def _control_section(r: _Reader, doc: Mapping[str, Any]) -> ControlConfig:
    t = r.table(doc, "control", "control")
    r.known(t, "control", {"tick_s", "step_min", "horizon_h", "mode", "stale_after_s", "layout",
                           "store_margin_frac", "renewable_margin_frac", "heat_carry_half_life_h",
                           "align_steps"})
    tick_s = r.get(t, "tick_s", "control", float, 1.0,
                   check=lambda v: None if 0.05 <= v <= 60 else "must be within 0.05..60 s")
    step_min = r.get(t, "step_min", "control", int, 15,
                     check=lambda v: None if v > 0 and 1440 % v == 0 else "must divide a day (minutes)")
    horizon_h = r.get(t, "horizon_h", "control", float, 24.0,
                      check=lambda v: None if 0 < v <= 168 else "must be within 0..168 h")
    if step_min and horizon_h and (horizon_h * 60) % step_min:
        r.error("control.horizon_h", f"{horizon_h} h is not a whole number of {step_min}-min steps")
    layout = _layout(r, r.get(t, "layout", "control", list, None))
    align_steps = r.get(t, "align_steps", "control", bool, False)
    if align_steps and layout is not None and layout[0][1] != 1:
        r.error("control.align_steps", f"needs the layout's first span in single steps, has "
                                       f"multiple {layout[0][1]}")
    return ControlConfig(
        tick_s=tick_s, step_min=step_min, horizon_h=horizon_h,
        mode=r.get(t, "mode", "control", str, "auto", check=one_of("auto", "manual", "safe")),
        stale_after_s=r.get(t, "stale_after_s", "control", float, 5.0, check=positive),
        store_margin_frac=r.get(t, "store_margin_frac", "control", float, 0.4,
                                check=lambda v: None if 0.0 <= v <= 1.0 else "must be within 0..1"),
        renewable_margin_frac=r.get(t, "renewable_margin_frac", "control", float, 1.0,
                                    check=lambda v: None if 0.0 <= v <= 1.0 else "must be within 0..1"),
        heat_carry_half_life_h=r.get(t, "heat_carry_half_life_h", "control", float, None,
                                     check=lambda v: None if 0.0 < v <= 168.0 else "must be within 0..168 h"),
        layout=layout, align_steps=align_steps,
    )


def _layout(r: _Reader, raw: list[Any] | None) -> tuple[tuple[float, int], ...] | None:
    """``[[hours, multiple], ...]``: hours > 0 (a number), multiple a whole number >= 1."""
    if raw is None:
        return None
    out: list[tuple[float, int]] = []
    for i, span in enumerate(raw):
        ok = (isinstance(span, list) and len(span) == 2
              and isinstance(span[0], (int, float)) and not isinstance(span[0], bool) and span[0] > 0
              and isinstance(span[1], int) and not isinstance(span[1], bool) and span[1] >= 1)
        if not ok:
            r.error(f"control.layout[{i}]", f"must be [hours > 0, whole multiple of step_min >= 1], "
                                            f"got {span!r}")
            return None
        out.append((float(span[0]), int(span[1])))
    if not out:
        r.error("control.layout", "must list at least one [hours, multiple] span")
        return None
    return tuple(out)


def _mqtt_section(r: _Reader, doc: Mapping[str, Any]) -> MqttConfig:
    t = r.table(doc, "mqtt", "mqtt")
    r.known(t, "mqtt", {"enabled", "host", "port", "tls_ca", "tls_cert", "tls_key",
                        "client_id", "keepalive_s"})
    cfg = MqttConfig(
        enabled=r.get(t, "enabled", "mqtt", bool, False),
        host=r.get(t, "host", "mqtt", str, "127.0.0.1"),
        port=r.get(t, "port", "mqtt", int, 1883,
                   check=lambda v: None if 0 < v < 65536 else "must be a TCP port"),
        tls_ca=r.path(r.get(t, "tls_ca", "mqtt", str, "")),
        tls_cert=r.path(r.get(t, "tls_cert", "mqtt", str, "")),
        tls_key=r.path(r.get(t, "tls_key", "mqtt", str, "")),
        client_id=r.get(t, "client_id", "mqtt", str, ""),
        keepalive_s=r.get(t, "keepalive_s", "mqtt", int, 30, check=positive),
    )
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        r.error("mqtt.tls_cert", "tls_cert and tls_key go together")
    return cfg


def _security_section(r: _Reader, doc: Mapping[str, Any]) -> tuple[TrustedKey, ...]:
    t = r.table(doc, "security", "security")
    r.known(t, "security", {"trusted_keys"})
    keys: list[TrustedKey] = []
    seen: set[str] = set()
    for i, k in enumerate(r.get(t, "trusted_keys", "security", list, [])):
        path = f"security.trusted_keys[{i}]"
        if not isinstance(k, dict):
            r.error(path, f"must be a table {{key_id, public_key}}, got {k!r}")
            continue
        r.known(k, path, {"key_id", "public_key"})
        key_id = r.get(k, "key_id", path, str, "", required=True)
        pub = r.get(k, "public_key", path, str, "", required=True)
        if key_id in seen:
            r.error(f"{path}.key_id", f"duplicate key_id {key_id!r}")
        seen.add(key_id)
        if pub and not _is_raw_key(pub):  # else a PEM file, relative to the site file
            resolved = r.path(pub)
            pub = str(resolved) if resolved else pub
        keys.append(TrustedKey(key_id, pub))
    return tuple(keys)


def _is_raw_key(text: str) -> bool:
    """Base64 of a raw 32-byte Ed25519 key (which may well contain '/')."""
    import base64
    import binascii

    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _tariff_section(r: _Reader, doc: Mapping[str, Any]) -> Tariff | None:
    """Unknown keys are caught here; values, hours and coverage by edge.control's one parser."""
    if "tariff" not in doc:
        return None
    from edge.control.inputs import tariff_from_table
    from edge.control.plant import AssetsInvalid

    t = r.table(doc, "tariff", "tariff")
    r.known(t, "tariff", {"periods", "gas_cny_per_m3", "carbon_cny_per_t", "diesel_cny_per_l"})
    periods = t.get("periods", [])
    for i, p in enumerate(periods if isinstance(periods, list) else []):
        if isinstance(p, dict):
            r.known(p, f"tariff.periods[{i}]", {"name", "hours", "import_cny_per_kwh", "export_cny_per_kwh",
                                               "grid_co2_kg_per_kwh", "months"})
    try:
        return tariff_from_table(t)
    except AssetsInvalid as e:
        for err in e.errors:
            r.error(err.key, err.message)
        return None


# --------------------------------------------------------------------------- overrides and loading


def apply_overrides(doc: dict[str, Any], overrides: Sequence[str]) -> list[str]:
    """Apply ``KEY=VALUE`` overrides in place; values parse as TOML, else as strings.

    Returns one-line problems (an override that names no key path is one)."""
    problems: list[str] = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            problems.append(f"--set {item!r}: expected KEY=VALUE")
            continue
        try:
            value: Any = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        node: Any = doc
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", key)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part.startswith("["):
                idx = int(part[1:-1])
                if not isinstance(node, list) or idx >= len(node):
                    problems.append(f"--set {key}: no element {idx}")
                    break
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif last:
                if not isinstance(node, dict):
                    problems.append(f"--set {key}: {part!r} is not in a table")
                    break
                node[part] = value
            else:
                if not isinstance(node, dict):
                    problems.append(f"--set {key}: {part!r} is not in a table")
                    break
                node = node.setdefault(part, {})
    return problems


def embedded_site_path(site_id: str) -> Path:
    """The default configuration shipped in the package for a reference park."""
    ref = resources.files("edge") / "sites" / f"{site_id}.toml"
    return Path(str(ref))


def load_site(path: str | Path, overrides: Sequence[str] = (), *,
              base_dir: Path | None = None) -> SiteConfig:
    """Load and validate a site file; raise ConfigInvalid with every error found."""
    from edge import config_rules  # device rules are long; kept in their own module

    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigInvalid([ConfigError(shown, 0, "-", f"cannot read: {e.strerror}")]) from e
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        where = re.search(r"line (\d+)", str(e))
        line = int(where.group(1)) if where else 1
        raise ConfigInvalid([ConfigError(shown, line, "-", f"not valid TOML: {e}")]) from e
    problems = apply_overrides(doc, overrides)
    if problems:
        raise ConfigInvalid([ConfigError(shown, 0, "--set", p) for p in problems])

    r = _Reader(shown, key_lines(text), base_dir or path.resolve().parent)
    r.known(doc, "", {"site", "store", "control", "mqtt", "security", "metrics", "cli",
                      "tariff", "devices", "assets"})
    site_id, tz, name, country = _site_section(r, doc)
    site_t = doc.get("site", {}) if isinstance(doc.get("site"), dict) else {}
    latitude = r.get(site_t, "latitude", "site", float, None,
                     check=lambda v: None if -90 <= v <= 90 else "must be within -90..90 degrees")
    longitude = r.get(site_t, "longitude", "site", float, None,
                      check=lambda v: None if -180 <= v <= 180 else "must be within -180..180 degrees")
    store = _store_section(r, doc, site_id)
    control = _control_section(r, doc)
    mqtt = _mqtt_section(r, doc)
    keys = _security_section(r, doc)
    m = r.table(doc, "metrics", "metrics")
    r.known(m, "metrics", {"listen"})
    metrics = MetricsConfig(r.get(m, "listen", "metrics", str, "127.0.0.1:9108", check=_listen))
    c = r.table(doc, "cli", "cli")
    r.known(c, "cli", {"socket"})
    sock = r.path(r.get(c, "socket", "cli", str, f"var/{site_id or 'site'}.sock"))
    assert sock is not None
    tariff = _tariff_section(r, doc)
    devices = config_rules.devices(r, doc)
    assets = r.table(doc, "assets", "assets")
    plant = _plant(r, assets, tz) if assets else None
    if plant is not None:
        _asset_points(r, assets, devices)
    if r.errors:
        raise ConfigInvalid(sorted(r.errors, key=lambda e: e.line))
    return SiteConfig(
        file=path, id=site_id, timezone=tz, name=name, country=country, store=store,
        control=control, mqtt=mqtt, trusted_keys=keys, metrics=metrics, cli=CliConfig(sock),
        tariff=tariff, devices=devices, assets=assets, plant=plant, raw=doc,
        latitude=latitude, longitude=longitude,
    )


def _plant(r: _Reader, assets: Mapping[str, Any], tz: str) -> PlantModel | None:
    """The controller's model of the park, checked here so every tool sees its errors."""
    from edge.control.plant import AssetsInvalid, plant_from_assets

    try:
        plant = plant_from_assets(assets, timezone=tz)
    except AssetsInvalid as e:
        for err in e.errors:
            r.error(err.key, err.message)
        return None
    return plant


def _asset_points(r: _Reader, assets: Mapping[str, Any], devices: Sequence[DeviceConfig]) -> None:
    """Every ``*_point`` of ``[assets]`` names a point of the site; every ``*set_point`` a writable one.

    A load's ``forecast`` names one of the forecaster's targets.
    """
    points = {f"{d.name}.{p.name}": p for d in devices for p in d.points}
    heartbeats = {f"{d.name}.{d.heartbeat.point}" for d in devices if d.heartbeat}

    def check(path: str, body: Mapping[str, Any]) -> None:
        for key, value in body.items():
            if not isinstance(value, str) or not value:
                continue
            if key.endswith("_point"):
                pt = points.get(value)
                if pt is None:
                    hint = _closest(value, set(points))
                    r.error(f"{path}.{key}", f"{value!r} is not a point of this site"
                            + (f" (did you mean '{hint}'?)" if hint else ""))
                elif key.endswith("set_point") and (not pt.writable or value in heartbeats):
                    r.error(f"{path}.{key}", f"{value!r} is not a writable point (access {pt.access!r})")
            elif key == "forecast":
                from edge.forecast.runtime import TARGETS  # heavy (onnxruntime): only when used

                if value not in TARGETS:
                    r.error(f"{path}.{key}", f"{value!r} is not a forecast target ({', '.join(TARGETS)})")

    for kind, group in assets.items():
        if not isinstance(group, Mapping):
            continue
        if kind in ("grid", "objective"):
            check(f"assets.{kind}", group)
            continue
        for name, body in group.items():
            if isinstance(body, Mapping):
                check(f"assets.{kind}.{name}", body)
