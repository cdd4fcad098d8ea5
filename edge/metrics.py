"""Prometheus metrics of one daemon, in their own registry (tests run several daemons).

Base units, ``_total`` for counters, ``_seconds``/``_bytes`` suffixes, labels with
bounded values only (device, protocol, quality, reason; never a point value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_FAST = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.info = Gauge("parkedge_info", "Site and version of this daemon", ["site", "version"], registry=r)
        self.tick_duration = Histogram("parkedge_tick_duration_seconds", "Work of one control tick",
                                       buckets=_FAST, registry=r)
        self.tick_overruns = Counter("parkedge_tick_overruns_total", "Ticks that ran past their slot", registry=r)
        self.poll_duration = Histogram("parkedge_poll_duration_seconds", "One poll of a device",
                                       ["device"], buckets=_FAST, registry=r)
        self.poll_overruns = Counter("parkedge_poll_overruns_total", "Polls that ran past their slot",
                                     ["device"], registry=r)
        self.poll_errors = Counter("parkedge_poll_errors_total", "Failed polls", ["device", "kind"], registry=r)
        self.device_up = Gauge("parkedge_device_up", "1 when the last poll of the device succeeded",
                               ["device", "protocol"], registry=r)
        self.points = Gauge("parkedge_points", "Points by quality at the last tick", ["quality"], registry=r)
        self.setpoint_writes = Counter("parkedge_setpoint_writes_total", "Setpoints written", ["device"],
                                       registry=r)
        self.setpoint_rejections = Counter("parkedge_setpoint_rejections_total",
                                           "Setpoints clamped, refused by the device or failed",
                                           ["device", "reason"], registry=r)
        self.readback_mismatch = Counter("parkedge_readback_mismatch_total",
                                         "Written values that did not read back", ["device"], registry=r)
        self.heartbeats = Counter("parkedge_heartbeat_writes_total", "Heartbeat writes", ["device"], registry=r)
        self.store_rows = Counter("parkedge_store_rows_total", "Telemetry rows committed", registry=r)
        self.store_bytes = Gauge("parkedge_store_bytes", "Size of the SQLite store", registry=r)
        self.store_errors = Counter("parkedge_store_errors_total", "Failed store commits", ["kind"], registry=r)
        self.commit_duration = Histogram("parkedge_store_commit_duration_seconds", "One tick's commit",
                                         buckets=_FAST, registry=r)
        self.mode = Gauge("parkedge_mode", "1 for the control mode in force", ["mode"], registry=r)
        self.control_reason = Counter("parkedge_control_decisions_total",
                                      "Decisions by how they were made (optimal or a fallback)",
                                      ["reason"], registry=r)
        self.solve_duration = Histogram("parkedge_solve_duration_seconds", "Optimiser update and solve",
                                        buckets=_FAST, registry=r)
        self.forecast_fallback = Gauge("parkedge_forecast_fallback", "1 when a target uses a baseline",
                                       ["target"], registry=r)
        self.forecast_nmae = Gauge("parkedge_forecast_nmae", "Rolling nMAE on what happened",
                                   ["target", "source"], registry=r)
        self.overrides = Gauge("parkedge_overrides", "Manual overrides in force", registry=r)
        self.mqtt_connected = Gauge("parkedge_mqtt_connected", "1 while the uplink is connected", registry=r)
        self.outbox_rows = Gauge("parkedge_outbox_rows", "Telemetry rows not yet acknowledged by the broker",
                                 registry=r)
        self.outbox_dropped = Counter("parkedge_outbox_dropped_total", "Outbox rows dropped by the budget",
                                      registry=r)
        self.task_restarts = Counter("parkedge_task_restarts_total", "Supervised tasks restarted",
                                     ["task"], registry=r)

    def serve(self, host: str, port: int) -> None:
        """The /metrics endpoint, on a thread of its own (prometheus_client's server)."""
        start_http_server(port, addr=host, registry=self.registry)

    def set_mode(self, mode: str) -> None:
        for m in ("auto", "manual", "safe"):
            self.mode.labels(m).set(1.0 if m == mode else 0.0)
