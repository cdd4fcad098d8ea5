"""The ``[[devices]]`` part of a site file: parsing and the rules a field engineer
relies on (units that match names, registers that do not overlap, limits a
register can actually hold)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edge.config import (
    NAME_RE,
    DeviceConfig,
    HeartbeatConfig,
    Limits,
    OpcUaSecurity,
    OpcUaSubscription,
    PointConfig,
    non_negative,
    one_of,
    positive,
)

if TYPE_CHECKING:
    from edge.config import _Reader

TYPES_REGISTERS = {
    "bit": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
    "float32": 2, "float64": 4, "string": 0,
}
_INT_RANGE = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}
# A point's name suffix promises a unit; the unit field must keep that promise.
UNIT_BY_SUFFIX = {
    "_kw": {"kW"}, "_kwh": {"kWh"}, "_mw": {"MW"}, "_kvar": {"kvar"}, "_w": {"W"},
    "_frac": {"frac", "1"}, "_pct": {"%"}, "_v": {"V"}, "_a": {"A"}, "_hz": {"Hz"},
    "_c": {"degC"}, "_degc": {"degC"}, "_m_s": {"m/s"}, "_w_m2": {"W/m2"}, "_s": {"s"},
    "_m3_h": {"m3/h"}, "_kg": {"kg"}, "_l": {"L", "l"},
}
_POINT_KEYS_COMMON = {"name", "unit", "access", "deadband", "limits", "default"}
_POINT_KEYS_MODBUS = {"address", "table", "type", "order", "bit", "length", "scale", "offset", "sf_address"}
_POINT_KEYS_OPCUA = {"node", "scale", "offset"}
_DEVICE_KEYS = {"name", "protocol", "endpoint", "unit", "poll_ms", "timeout_ms", "max_gap",
                "sunspec", "heartbeat", "namespace_uri", "security", "subscription", "points"}
_SCHEMES = {"modbus": ("tcp://", "rtu+tcp://", "rtu://"), "opcua": ("opc.tcp://",)}


def devices(r: _Reader, doc: Mapping[str, Any]) -> tuple[DeviceConfig, ...]:
    raw = doc.get("devices", [])
    if not isinstance(raw, list):
        r.error("devices", "must be an array of tables [[devices]]")
        return ()
    out: list[DeviceConfig] = []
    seen: set[str] = set()
    for i, d in enumerate(raw):
        dev = _device(r, d, f"devices[{i}]")
        if dev is None:
            continue
        if dev.name in seen:
            r.error(f"devices[{i}].name", f"duplicate device name {dev.name!r}")
        seen.add(dev.name)
        out.append(dev)
    return tuple(out)


def _device(r: _Reader, d: Any, path: str) -> DeviceConfig | None:
    if not isinstance(d, dict):
        r.error(path, "must be a table")
        return None
    r.known(d, path, _DEVICE_KEYS)
    name = r.get(d, "name", path, str, "", required=True,
                 check=lambda v: None if NAME_RE.match(v) else "must match [a-z0-9_]+")
    protocol = r.get(d, "protocol", path, str, "modbus", required=True,
                     check=one_of("modbus", "opcua"))
    endpoint = r.get(d, "endpoint", path, str, "", required=True)
    if endpoint and protocol in _SCHEMES and not endpoint.startswith(_SCHEMES[protocol]):
        r.error(f"{path}.endpoint",
                f"{endpoint!r} does not fit protocol {protocol!r} (use {' or '.join(_SCHEMES[protocol])})")
    points = _points(r, d, path, protocol)
    hb = _heartbeat(r, d, path, points)
    security, subscription = _opcua_options(r, d, path, protocol)
    ns = r.get(d, "namespace_uri", path, str, "")
    if protocol == "opcua" and not ns:
        r.error(f"{path}.namespace_uri", "required for opcua: nodes are resolved by namespace URI")
    return DeviceConfig(
        name=name, protocol=protocol, endpoint=endpoint, points=points,
        unit=r.get(d, "unit", path, int, 1,
                   check=lambda v: None if 0 <= v <= 247 else "must be a Modbus unit id 0..247"),
        poll_ms=r.get(d, "poll_ms", path, int, 500,
                      check=lambda v: None if v >= 10 else "must be >= 10 ms"),
        timeout_ms=r.get(d, "timeout_ms", path, int, 500, check=positive),
        max_gap=r.get(d, "max_gap", path, int, 8, check=non_negative),
        sunspec=r.get(d, "sunspec", path, bool, False),
        heartbeat=hb, namespace_uri=ns, security=security, subscription=subscription,
    )


def _heartbeat(r: _Reader, d: Mapping[str, Any], path: str,
               points: tuple[PointConfig, ...]) -> HeartbeatConfig | None:
    if "heartbeat" not in d:
        return None
    hb = r.get(d, "heartbeat", path, dict, {})
    r.known(hb, f"{path}.heartbeat", {"point", "period_ms"})
    point = r.get(hb, "point", f"{path}.heartbeat", str, "", required=True)
    period = r.get(hb, "period_ms", f"{path}.heartbeat", int, 1000,
                   check=lambda v: None if v >= 50 else "must be >= 50 ms")
    target = next((p for p in points if p.name == point), None)
    if point and target is None:
        r.error(f"{path}.heartbeat.point", f"names no point of this device: {point!r}")
    elif target is not None and not target.writable:
        r.error(f"{path}.heartbeat.point", f"{point!r} must be writable (access rw or w)")
    return HeartbeatConfig(point, period)


def _opcua_options(r: _Reader, d: Mapping[str, Any], path: str,
                   protocol: str) -> tuple[OpcUaSecurity, OpcUaSubscription | None]:
    security = OpcUaSecurity()
    if "security" in d:
        s = r.get(d, "security", path, dict, {})
        sp = f"{path}.security"
        r.known(s, sp, {"policy", "mode", "cert", "key", "username", "password_file"})
        security = OpcUaSecurity(
            policy=r.get(s, "policy", sp, str, "None",
                         check=one_of("None", "Basic256Sha256", "Aes256_Sha256_RsaPss")),
            mode=r.get(s, "mode", sp, str, "None", check=one_of("None", "Sign", "SignAndEncrypt")),
            cert=r.path(r.get(s, "cert", sp, str, "")),
            key=r.path(r.get(s, "key", sp, str, "")),
            username=r.get(s, "username", sp, str, ""),
            password_file=r.path(r.get(s, "password_file", sp, str, "")),
        )
        if (security.policy == "None") != (security.mode == "None"):
            r.error(f"{sp}.mode", f"policy {security.policy!r} and mode {security.mode!r} do not go together")
        if security.policy != "None" and (security.cert is None or security.key is None):
            r.error(f"{sp}.cert", "a secured policy needs the client cert and key")
    subscription = None
    if "subscription" in d:
        s = r.get(d, "subscription", path, dict, {})
        sp = f"{path}.subscription"
        r.known(s, sp, {"publishing_ms", "sampling_ms"})
        subscription = OpcUaSubscription(
            publishing_ms=r.get(s, "publishing_ms", sp, int, 200, check=positive),
            sampling_ms=r.get(s, "sampling_ms", sp, int, 100, check=non_negative),
        )
    if protocol != "opcua" and ("security" in d or "subscription" in d):
        r.error(f"{path}.protocol", "security and subscription are OPC UA options")
    return security, subscription


def _points(r: _Reader, d: Mapping[str, Any], path: str, protocol: str) -> tuple[PointConfig, ...]:
    raw = d.get("points", [])
    if not isinstance(raw, list) or not raw:
        r.error(f"{path}.points", "a device needs at least one [[devices.points]]")
        return ()
    out: list[PointConfig] = []
    names: dict[str, int] = {}
    for j, p in enumerate(raw):
        pp = f"{path}.points[{j}]"
        if not isinstance(p, dict):
            r.error(pp, "must be a table")
            continue
        pt = _point(r, p, pp, protocol)
        if pt.name in names:
            r.error(f"{pp}.name", f"duplicate point name {pt.name!r} (also points[{names[pt.name]}])")
        names[pt.name] = j
        out.append(pt)
    if protocol == "modbus":
        _check_overlaps(r, out, path)
    return tuple(out)


def _point(r: _Reader, p: Mapping[str, Any], pp: str, protocol: str) -> PointConfig:
    allowed = _POINT_KEYS_COMMON | (_POINT_KEYS_MODBUS if protocol == "modbus" else _POINT_KEYS_OPCUA)
    r.known(p, pp, allowed)
    name = r.get(p, "name", pp, str, "", required=True,
                 check=lambda v: None if NAME_RE.match(v) else "must match [a-z0-9_]+")
    unit = r.get(p, "unit", pp, str, "1")
    # The longest suffix decides: wind_m_s promises m/s, not seconds.
    suffix = max((s for s in UNIT_BY_SUFFIX if name.endswith(s)), key=len, default=None)
    if suffix is not None and unit not in UNIT_BY_SUFFIX[suffix]:
        expected = " or ".join(sorted(UNIT_BY_SUFFIX[suffix]))
        r.error(f"{pp}.unit", f"{unit!r} does not fit the name {name!r} (expected {expected})")
    access = r.get(p, "access", pp, str, "r", check=one_of("r", "rw", "w"))
    limits = _limits(r, p, pp)
    if access != "r" and "limits" not in p:
        r.error(f"{pp}.limits",
                "a writable point needs limits {min, max[, ramp_per_s]}: nothing is written unclamped")
    default = r.get(p, "default", pp, float, None)
    if default is not None and limits is not None and not limits.min <= default <= limits.max:
        r.error(f"{pp}.default", f"{default} is outside the limits [{limits.min}, {limits.max}]")
    common: dict[str, Any] = dict(name=name, unit=unit, access=access, limits=limits, default=default,
                                  deadband=r.get(p, "deadband", pp, float, 0.0, check=non_negative))
    if protocol == "opcua":
        node = r.get(p, "node", pp, str, "", required=True,
                     check=lambda v: None if v[:2] in ("s=", "i=", "g=", "b=")
                     else "must be s=, i=, g= or b= within the namespace")
        return PointConfig(**common, node=node,
                           scale=r.get(p, "scale", pp, float, 1.0,
                                       check=lambda v: None if v != 0 else "must not be 0"),
                           offset=r.get(p, "offset", pp, float, 0.0))
    table = r.get(p, "table", pp, str, "holding", check=one_of("holding", "input", "coil", "discrete"))
    typ = r.get(p, "type", pp, str, "uint16", check=one_of(*TYPES_REGISTERS))
    order = r.get(p, "order", pp, str, "ABCD", check=one_of("ABCD", "DCBA", "BADC", "CDAB"))
    pt = PointConfig(
        **common,
        address=r.get(p, "address", pp, int, 0, required=True,
                      check=lambda v: None if 0 <= v <= 65535 else "must be a PDU address 0..65535"),
        table=table, type=typ, order=order,
        bit=r.get(p, "bit", pp, int, None,
                  check=lambda v: None if 0 <= v <= 15 else "must be 0..15"),
        length=r.get(p, "length", pp, int, None,
                     check=lambda v: None if 1 <= v <= 125 else "must be 1..125 registers"),
        scale=r.get(p, "scale", pp, float, 1.0,
                    check=lambda v: None if v != 0 else "must not be 0"),
        offset=r.get(p, "offset", pp, float, 0.0),
        sf_address=r.get(p, "sf_address", pp, int, None,
                         check=lambda v: None if 0 <= v <= 65535 else "must be a PDU address 0..65535"),
    )
    if table in ("coil", "discrete") and typ != "bit":
        r.error(f"{pp}.type", f"{table} points are single bits; type must be 'bit', got {typ!r}")
    if typ == "string" and pt.length is None:
        r.error(f"{pp}.length", "a string point needs its length in registers")
    if table in ("input", "discrete") and access != "r":
        r.error(f"{pp}.access", f"{table} registers are read-only, got {access!r}")
    if limits is not None and typ in _INT_RANGE:
        lo, hi = _INT_RANGE[typ]
        for label, eng in (("min", limits.min), ("max", limits.max)):
            raw_value = (eng - pt.offset) / pt.scale
            if not lo <= raw_value <= hi:
                r.error(f"{pp}.limits.{label}",
                        f"{eng} needs raw {raw_value:g}, which type {typ} (scale {pt.scale:g}) cannot hold")
    return pt


def _limits(r: _Reader, p: Mapping[str, Any], pp: str) -> Limits | None:
    if "limits" not in p:
        return None
    lim = r.get(p, "limits", pp, dict, {})
    lp = f"{pp}.limits"
    r.known(lim, lp, {"min", "max", "ramp_per_s"})
    lo = r.get(lim, "min", lp, float, None, required=True)
    hi = r.get(lim, "max", lp, float, None, required=True)
    ramp = r.get(lim, "ramp_per_s", lp, float, None, check=positive)
    if lo is None or hi is None:
        return None
    if lo > hi:
        r.error(f"{lp}.min", f"min {lo} is above max {hi}")
        return None
    return Limits(lo, hi, ramp)


def _check_overlaps(r: _Reader, points: list[PointConfig], path: str) -> None:
    spans: dict[str, list[tuple[int, int, int | None, int]]] = {}
    for j, pt in enumerate(points):
        if pt.address is None:
            continue
        size = pt.length or 1 if pt.type == "string" else max(TYPES_REGISTERS[pt.type], 1)
        spans.setdefault(pt.table, []).append((pt.address, pt.address + size - 1, pt.bit, j))
    for table_spans in spans.values():
        table_spans.sort()
        # Compare each span with the one reaching furthest so far: a long string
        # can overlap points that are not its neighbour in address order.
        reach: tuple[int, int, int | None, int] | None = None
        for span in table_spans:
            b0, b1, bbit, bi = span
            if reach is not None and b0 <= reach[1]:
                a0, a1, abit, ai = reach
                # Two flags in different bits of one register share it legitimately.
                if not (abit is not None and bbit is not None and (a0, a1) == (b0, b1) and abit != bbit):
                    a = points[ai]
                    r.error(f"{path}.points[{bi}].address",
                            f"{b0} overlaps {a.name!r} ({a0}-{a1}) of the same device")
            if reach is None or b1 > reach[1]:
                reach = span
