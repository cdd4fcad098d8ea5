"""Renders the device part of a site file from the sims' own register maps.

Used to write edge/sites/*.toml (``python -m parksim.sitecfg park-a --write
edge/sites/park-a.toml`` re-renders the devices part in place); the test
tests/sims/test_site_configs.py then checks the files against the running servers,
so the files stay the truth a field engineer reads.
"""

from __future__ import annotations

import sys

from .physics import build_park
from .protocols import opcmap, regmap
from .runtime import DEFAULT_BASE_PORT, modbus_layout

_TOML_TYPE = {"acc32": "uint32", "sunssf": "int16"}
_RAMP = {"bess1.p_set_kw": 2000.0, "chp1.p_set_kw": 400.0, "chp2.p_set_kw": 400.0}


def _num(v: float) -> str:
    return repr(int(v)) if float(v).is_integer() else repr(float(v))


def _limits(key: str, lim_map: dict) -> str:  # type: ignore[type-arg]
    lim = lim_map.get(key)
    if lim is None:  # heartbeat and other protocol-level writes
        return "limits = { min = 0, max = 65535 }"
    ramp = f", ramp_per_s = {_num(_RAMP[key])}" if key in _RAMP else ""
    return f"limits = {{ min = {_num(lim.min)}, max = {_num(lim.max)}{ramp} }}\ndefault = {_num(lim.default)}"


def render_devices(site: str) -> str:
    from datetime import UTC, datetime

    park = build_park(site, seed=0, start_utc=datetime(2026, 1, 1, tzinfo=UTC))
    lim_map = park.setpoint_limits()
    base = DEFAULT_BASE_PORT[site]
    out: list[str] = []
    for _name, (offset, rtu, maps) in modbus_layout(site).items():
        scheme = "rtu+tcp" if rtu else "tcp"
        for dm in maps:
            sunspec = any(a == regmap.SUNSPEC_BASE for a in dm.constants)
            hb = dm.heartbeat_point()
            out.append("[[devices]]")
            out.append(f'name = "{dm.name}"')
            out.append('protocol = "modbus"')
            out.append(f'endpoint = "{scheme}://127.0.0.1:{base + offset}"')
            out.append(f"unit = {dm.unit_id}")
            out.append(f"poll_ms = {1000 if rtu else 200}")
            out.append(f"timeout_ms = {1000 if rtu else 500}")
            out.append(f"sunspec = {'true' if sunspec else 'false'}")
            if hb:
                out.append(f'heartbeat = {{ point = "{hb.name}", period_ms = 1000 }}')
            out.append("")
            for p in dm.points:
                out.append("[[devices.points]]")
                out.append(f'name = "{p.name}"')
                out.append(f"address = {p.address}")
                out.append(f'type = "{_TOML_TYPE.get(p.type, p.type)}"')
                if p.words == 2 and p.order != "ABCD":
                    out.append(f'order = "{p.order}"')
                if p.scale != 1.0:
                    out.append(f"scale = {_num(p.scale)}")
                out.append(f'unit = "{p.unit}"')
                if p.access != "r":
                    out.append(f'access = "{p.access}"')
                    out.append(_limits(p.key, lim_map))
                out.append("")
    pts = opcmap.site_points(site)
    devices: dict[str, list[opcmap.OpcPoint]] = {}
    for p in pts:
        devices.setdefault(p.device, []).append(p)
    for dev, dpts in devices.items():
        out.append("[[devices]]")
        out.append(f'name = "{dev}"')
        out.append('protocol = "opcua"')
        out.append(f'endpoint = "opc.tcp://127.0.0.1:{base}/parkedge/{site}"')
        out.append(f'namespace_uri = "urn:parkedge:sim:{site}"')
        out.append("poll_ms = 500")
        out.append("timeout_ms = 1000")
        if any(p.heartbeat for p in dpts):
            out.append('heartbeat = { point = "heartbeat", period_ms = 1000 }')
        out.append("subscription = { publishing_ms = 200, sampling_ms = 100 }")
        out.append("")
        for p in dpts:
            out.append("[[devices.points]]")
            out.append(f'name = "{p.point}"')
            out.append(f'node = "s={p.node}"')
            if p.scale != 1.0:
                out.append(f"scale = {_num(p.scale)}")
            out.append(f'unit = "{"bool" if p.vtype == "Boolean" else p.unit}"')
            if p.writable:
                out.append('access = "rw"')
                out.append(_limits(p.key, lim_map))
            out.append("")
    return "\n".join(out)


DEVICES_MARKER = "# --- devices:"
ASSETS_MARKER = "# --- [assets]"


def rewrite_devices(site: str, text: str) -> str:
    """A site file's text with the part between its devices and [assets] markers re-rendered.

    The hand-written sections above (site, store, tariff, ...) and the ``[assets]``
    below the marker are kept as they are.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.startswith(DEVICES_MARKER)), None)
    end = next((i for i, ln in enumerate(lines) if ln.startswith(ASSETS_MARKER)), None)
    if start is None or end is None or end < start:
        raise ValueError(f"the file needs a '{DEVICES_MARKER} ...' line, then a '{ASSETS_MARKER} ...' line")
    return "".join(lines[: start + 1]) + "\n" + render_devices(site) + "\n" + "".join(lines[end:])


if __name__ == "__main__":
    # python -m parksim.sitecfg park-a                       : print the [[devices]] part
    # python -m parksim.sitecfg park-a --write FILE          : re-render it inside FILE
    if len(sys.argv) == 4 and sys.argv[2] == "--write":
        from pathlib import Path

        path = Path(sys.argv[3])
        path.write_text(rewrite_devices(sys.argv[1], path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(render_devices(sys.argv[1]))
