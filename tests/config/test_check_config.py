"""`parkedge check-config` on broken files: one test per kind of error.

Each case starts from a small valid site and breaks one thing; the error must
name the file, the line of the offending key, the key path, and the value.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import ConfigInvalid, load_site

VALID = textwrap.dedent('''\
    [site]
    id = "park-t"
    timezone = "Asia/Shanghai"

    [store]
    path = "var/t.db"
    max_bytes = 50_000_000

    [control]
    tick_s = 1.0
    step_min = 15
    horizon_h = 24

    [security]
    trusted_keys = [
      { key_id = "cloud-1", public_key = "keys/cloud-1.pub.pem" },
    ]

    [tariff]
    [[tariff.periods]]
    name = "day"
    hours = [[8, 22]]
    import_cny_per_kwh = 1.0
    export_cny_per_kwh = 0.4
    grid_co2_kg_per_kwh = 0.58
    [[tariff.periods]]
    name = "night"
    hours = [[0, 8], [22, 24]]
    import_cny_per_kwh = 0.3
    export_cny_per_kwh = 0.2
    grid_co2_kg_per_kwh = 0.51

    [[devices]]
    name = "bess1"
    protocol = "modbus"
    endpoint = "tcp://127.0.0.1:15021"
    unit = 1
    heartbeat = { point = "heartbeat", period_ms = 1000 }

    [[devices.points]]
    name = "soc_frac"
    address = 40083
    type = "uint16"
    scale = 0.01
    unit = "frac"

    [[devices.points]]
    name = "p_set_kw"
    address = 40100
    type = "float32"
    order = "CDAB"
    access = "rw"
    unit = "kW"
    limits = { min = -10000, max = 10000, ramp_per_s = 2000 }

    [[devices.points]]
    name = "heartbeat"
    address = 40110
    type = "uint16"
    access = "rw"
    unit = "1"
    limits = { min = 0, max = 65535 }

    [[devices]]
    name = "chp1"
    protocol = "opcua"
    endpoint = "opc.tcp://127.0.0.1:4840/parkedge/sim"
    namespace_uri = "urn:parkedge:sim:park-t"
    subscription = { publishing_ms = 200, sampling_ms = 100 }

    [[devices.points]]
    name = "p_kw"
    node = "s=Chp1.ElectricPower_kW"
    unit = "kW"
''')


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    path = write(tmp_path, text)
    assert main(["check-config", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    for line in lines:
        assert re.match(rf"^{re.escape(str(path))}:\d+: \S+: .+", line), line
    return lines


def line_no(text: str, needle: str, occurrence: int = 1) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def test_valid_file_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, VALID)
    assert main(["check-config", str(path)]) == 0
    assert "ok: site park-t, 2 devices, 4 points" in capsys.readouterr().out
    site = load_site(path)
    assert site.store.path == tmp_path / "var/t.db"  # relative to the file
    p_set = site.find_point("bess1.p_set_kw")
    assert p_set is not None and p_set[1].order == "CDAB" and p_set[1].limits is not None
    assert p_set[1].limits.ramp_per_s == 2000


def test_unknown_key_is_an_error_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("horizon_h = 24", "horizn_h = 24")
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, 'horizn_h')}: control.horizn_h: unknown key (did you mean 'horizon_h'?)" in err


def test_wrong_unit_for_the_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace('unit = "frac"', 'unit = "kW"')
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, 'scale = 0.01') + 1}: devices[0].points[0].unit: 'kW' does not fit" in err


def test_duplicate_point_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace('name = "heartbeat"\n    address = 40110', 'name = "soc_frac"\n    address = 40110')
    text = VALID.replace('name = "heartbeat"\naddress = 40110', 'name = "soc_frac"\naddress = 40110')
    errs = errors_of(tmp_path, text, capsys)
    assert any("devices[0].points[2].name: duplicate point name 'soc_frac'" in e for e in errs)


def test_duplicate_device_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace('name = "chp1"', 'name = "bess1"')
    errs = errors_of(tmp_path, text, capsys)
    assert any("devices[1].name: duplicate device name 'bess1'" in e for e in errs)


def test_overlapping_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # p_set_kw is a float32 at 40100-40101; the heartbeat moved onto its second word.
    text = VALID.replace("address = 40110", "address = 40101")
    (err,) = errors_of(tmp_path, text, capsys)
    assert (f":{line_no(text, 'address = 40101')}: devices[0].points[2].address: 40101 overlaps "
            "'p_set_kw' (40100-40101)") in err


def test_min_above_max(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("min = -10000, max = 10000", "min = 10000, max = -10000")
    (err,) = errors_of(tmp_path, text, capsys)
    assert "devices[0].points[1].limits.min: min 10000.0 is above max -10000.0" in err


def test_limit_the_register_cannot_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("limits = { min = 0, max = 65535 }", "limits = { min = 0, max = 70000 }")
    (err,) = errors_of(tmp_path, text, capsys)
    assert "devices[0].points[2].limits.max: 70000.0 needs raw 70000, which type uint16" in err


def test_negative_ramp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("ramp_per_s = 2000", "ramp_per_s = -5")
    (err,) = errors_of(tmp_path, text, capsys)
    assert "devices[0].points[1].limits.ramp_per_s: must be > 0, got -5.0" in err


def test_writable_point_without_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("limits = { min = 0, max = 65535 }\n", "")
    (err,) = errors_of(tmp_path, text, capsys)
    assert "devices[0].points[2].limits: a writable point needs limits" in err


def test_heartbeat_names_an_unknown_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace('point = "heartbeat"', 'point = "watchdog"')
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, 'watchdog')}: devices[0].heartbeat.point: names no point of this device: 'watchdog'" in err


def test_endpoint_scheme_must_fit_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("tcp://127.0.0.1:15021", "opc.tcp://127.0.0.1:15021")
    (err,) = errors_of(tmp_path, text, capsys)
    assert "devices[0].endpoint: 'opc.tcp://127.0.0.1:15021' does not fit protocol 'modbus'" in err


def test_wrong_type_of_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("tick_s = 1.0", 'tick_s = "fast"')
    (err,) = errors_of(tmp_path, text, capsys)
    assert "control.tick_s: must be a number, got 'fast'" in err


def test_bad_timezone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("Asia/Shanghai", "Asia/Shangai")
    (err,) = errors_of(tmp_path, text, capsys)
    assert ":3: site.timezone: is not an IANA time zone, got 'Asia/Shangai'" in err


def test_tariff_must_price_every_hour_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("hours = [[0, 8], [22, 24]]", "hours = [[0, 9], [22, 24]]")
    (err,) = errors_of(tmp_path, text, capsys)
    assert (f":{line_no(text, '[[0, 9], [22, 24]]')}: tariff.periods[1].hours: [0, 9] overlaps "
            "another period in month 1") in err


def test_duplicate_trusted_key_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace('  { key_id = "cloud-1", public_key = "keys/cloud-1.pub.pem" },\n',
                         '  { key_id = "cloud-1", public_key = "a.pem" },\n'
                         '  { key_id = "cloud-1", public_key = "b.pem" },\n')
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, 'b.pem')}: security.trusted_keys[1].key_id: duplicate key_id 'cloud-1'" in err


def test_opcua_without_namespace_uri(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace('namespace_uri = "urn:parkedge:sim:park-t"\n', "")
    (err,) = errors_of(tmp_path, text, capsys)
    assert "devices[1].namespace_uri: required for opcua" in err


def test_not_toml_at_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("step_min = 15", "step_min = = 15")
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, 'step_min')}: -: not valid TOML" in err


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("horizon_h = 24", "horizn_h = 24").replace("ramp_per_s = 2000", "ramp_per_s = 0")
    with pytest.raises(ConfigInvalid) as info:
        load_site(write(tmp_path, text))
    assert [e.key for e in info.value.errors] == ["control.horizn_h", "devices[0].points[1].limits.ramp_per_s"]


def test_set_overrides_a_key_and_is_validated(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    site = load_site(path, ["mqtt.port=18830", "store.path=/tmp/x.db", "devices[0].poll_ms=100"])
    assert site.mqtt.port == 18830 and str(site.store.path) == "/tmp/x.db"
    assert site.devices[0].poll_ms == 100
    with pytest.raises(ConfigInvalid, match=r"mqtt\.port: must be a TCP port, got 99999"):
        load_site(path, ["mqtt.port=99999"])


def test_missing_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.toml:0: -: cannot read" in err


def test_step_layout_is_read_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = VALID.replace("horizon_h = 24", "horizon_h = 24\nlayout = [[4, 1], [4.5, 2], [24, 4]]")
    assert load_site(write(tmp_path, good)).control.layout == ((4.0, 1), (4.5, 2), (24.0, 4))
    assert load_site(write(tmp_path, VALID)).control.layout is None
    text = VALID.replace("horizon_h = 24", "horizon_h = 24\nlayout = [[4, 1], [0, 2]]")
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, 'layout')}: control.layout[1]: must be [hours > 0, whole multiple" in err
    assert "got [0, 2]" in err


@pytest.mark.parametrize(("key", "default", "site_name", "bad"), [
    ("store_margin_frac", 0.4, "park-b", 1.5), ("renewable_margin_frac", 1.0, "park-a", -0.1)])
def test_a_margin_is_read_and_checked(key: str, default: float, site_name: str, bad: float,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.config import embedded_site_path
    from edge.runner import controller_config

    assert getattr(load_site(write(tmp_path, VALID)).control, key) == default
    good = VALID.replace("horizon_h = 24", f"horizon_h = 24\n{key} = 0.2")
    assert getattr(load_site(write(tmp_path, good)).control, key) == 0.2
    site = load_site(embedded_site_path(site_name), [f"control.{key}=0.1"])
    assert getattr(controller_config(site), key) == 0.1
    assert controller_config(site).plant.grid.export_limiter      # both shipped sites have one
    text = VALID.replace("horizon_h = 24", f"horizon_h = 24\n{key} = {bad}")
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, key)}: control.{key}: must be within 0..1" in err


def test_a_heat_carry_half_life_is_read_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.config import embedded_site_path
    from edge.runner import controller_config

    assert load_site(write(tmp_path, VALID)).control.heat_carry_half_life_h is None
    good = VALID.replace("horizon_h = 24", "horizon_h = 24\nheat_carry_half_life_h = 12")
    assert load_site(write(tmp_path, good)).control.heat_carry_half_life_h == 12.0
    site = load_site(embedded_site_path("park-b"), ["control.heat_carry_half_life_h=6"])
    assert controller_config(site).heat_carry_half_life_h == 6.0
    text = VALID.replace("horizon_h = 24", "horizon_h = 24\nheat_carry_half_life_h = 0")
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, 'heat_carry_half_life_h')}: control.heat_carry_half_life_h: must be within" in err


def test_aligned_steps_are_read_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.config import embedded_site_path
    from edge.runner import controller_config

    assert load_site(write(tmp_path, VALID)).control.align_steps is False
    good = VALID.replace("horizon_h = 24", "horizon_h = 24\nalign_steps = true")
    assert load_site(write(tmp_path, good)).control.align_steps is True
    assert controller_config(load_site(embedded_site_path("park-a"))).align_steps is True
    assert controller_config(load_site(embedded_site_path("park-b"))).align_steps is False
    # its first step is split at the period's end: the layout's first span in single steps
    text = VALID.replace("horizon_h = 24", "horizon_h = 24\nalign_steps = true\nlayout = [[8, 2], [16, 4]]")
    (err,) = errors_of(tmp_path, text, capsys)
    assert f":{line_no(text, 'align_steps')}: control.align_steps: needs the layout's first span" in err
