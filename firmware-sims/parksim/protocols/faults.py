"""Fault injection, controllable from Python (tests, demos) per simulated device.

    sim.faults("bess1").offline = True          # Modbus: no reply (client times out)
    sim.faults("bess1").delay_s = 0.8           # Modbus: every reply delayed
    sim.faults("wind1").illegal_ranges.append((100, 104))  # exception 02 for reads/writes touching it
    sim.faults("chp1").bad_status = True        # OPC UA: the device's variables go BadDeviceFailure
    sim.faults("chp1").offline = True           # OPC UA: same, with BadNotConnected (server stays up)
    sim.faults("bess1").clear()
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    offline: bool = False
    delay_s: float = 0.0
    illegal_ranges: list[tuple[int, int]] = field(default_factory=list)  # [start, end)
    bad_status: bool = False

    def touches_illegal(self, address: int, count: int) -> bool:
        return any(address < end and start < address + count for start, end in self.illegal_ranges)

    def clear(self) -> None:
        self.offline = False
        self.delay_s = 0.0
        self.illegal_ranges.clear()
        self.bad_status = False
