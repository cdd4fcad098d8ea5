"""What a site configuration tells a driver: devices, points and endpoints.

Names follow docs/site-config.md so the TOML maps one to one; config turns
`timeout_ms` into `timeout_s` and reads password files, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from drivers.codec import DataType, Order, register_count


class Table(StrEnum):
    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)

    @property
    def writable(self) -> bool:
        return self in (Table.HOLDING, Table.COIL)


class Access(StrEnum):
    R = "r"
    RW = "rw"
    W = "w"

    @property
    def readable(self) -> bool:
        return self is not Access.W

    @property
    def writable(self) -> bool:
        return self is not Access.R


@dataclass(frozen=True, slots=True)
class ModbusPoint:
    """One Modbus point; `address` is the 0-based PDU address as on the wire.

    sf_address: SunSpec-style scale factor, an int16 register in the same table
    holding a power of ten: engineering = raw * 10**sf * scale + offset. The
    planner reads it with the point; it is not a point of its own.
    """

    name: str
    address: int
    table: Table = Table.HOLDING
    type: DataType = DataType.UINT16
    order: Order = Order.ABCD
    scale: float = 1.0
    offset: float = 0.0
    bit: int = 0
    length: int = 1
    access: Access = Access.R
    sf_address: int | None = None

    @property
    def count(self) -> int:
        """Registers (or bits, for coil and discrete tables) the point occupies."""
        if self.table.is_bits:
            return 1
        return register_count(self.type, length=self.length)

    @property
    def end(self) -> int:
        """One past the last register or bit."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class ModbusDevice:
    """A Modbus device and how hard to try it.

    breaker_failures consecutive failed polls open the breaker; after
    breaker_cooldown_s one probe poll decides. Connect attempts back off from
    backoff_initial_s doubling to backoff_max_s, with jitter so a park of
    gateways restarting together do not hammer a shared serial gateway in step.
    """

    name: str
    endpoint: str
    unit: int = 1
    timeout_s: float = 0.5
    max_gap: int = 8
    points: tuple[ModbusPoint, ...] = ()
    sunspec: bool = False
    breaker_failures: int = 3
    breaker_cooldown_s: float = 5.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    """tcp:// (MBAP framing) or rtu+tcp:// (RTU frames with CRC over a socket)."""

    host: str
    port: int
    rtu: bool = False


@dataclass(frozen=True, slots=True)
class SerialEndpoint:
    """rtu:///dev/ttyUSB0?baud=9600&parity=N&stopbits=1&bytesize=8"""

    port: str
    baud: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8


class EndpointError(ValueError):
    """An endpoint string that cannot be used; one line naming the endpoint."""


def parse_modbus_endpoint(endpoint: str) -> TcpEndpoint | SerialEndpoint:
    parts = urlsplit(endpoint)
    if parts.scheme in ("tcp", "rtu+tcp"):
        if not parts.hostname:
            raise EndpointError(f"{endpoint}: no host")
        try:
            port = parts.port or 502
        except ValueError as exc:
            raise EndpointError(f"{endpoint}: bad port") from exc
        return TcpEndpoint(host=parts.hostname, port=port, rtu=parts.scheme == "rtu+tcp")
    if parts.scheme == "rtu":
        if not parts.path:
            raise EndpointError(f"{endpoint}: no serial device path")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"baud", "parity", "stopbits", "bytesize"}
        if unknown:
            raise EndpointError(f"{endpoint}: unknown option {sorted(unknown)[0]!r}")
        try:
            serial = SerialEndpoint(
                port=parts.path,
                baud=int(query.get("baud", 9600)),
                parity=query.get("parity", "N").upper(),
                stopbits=int(query.get("stopbits", 1)),
                bytesize=int(query.get("bytesize", 8)),
            )
        except ValueError as exc:
            raise EndpointError(f"{endpoint}: {exc}") from exc
        if serial.parity not in ("N", "E", "O"):
            raise EndpointError(f"{endpoint}: parity must be N, E or O")
        if serial.stopbits not in (1, 2):
            raise EndpointError(f"{endpoint}: stopbits must be 1 or 2")
        return serial
    raise EndpointError(f"{endpoint}: scheme must be tcp://, rtu+tcp:// or rtu://")


def parse_opcua_endpoint(endpoint: str) -> str:
    """Checks an opc.tcp:// endpoint; returns it unchanged (asyncua takes the URL)."""
    parts = urlsplit(endpoint)
    if parts.scheme != "opc.tcp" or not parts.hostname:
        raise EndpointError(f"{endpoint}: must be opc.tcp://host:port/path")
    try:
        _ = parts.port
    except ValueError as exc:
        raise EndpointError(f"{endpoint}: bad port") from exc
    return endpoint


class SecurityPolicy(StrEnum):
    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"
    AES256_SHA256_RSAPSS = "Aes256_Sha256_RsaPss"


class SecurityMode(StrEnum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


@dataclass(frozen=True, slots=True)
class OpcUaSecurity:
    """cert and key are file paths (DER or PEM); password is the secret itself
    (config reads `password_file`, so the secret never sits in the site file)."""

    policy: SecurityPolicy = SecurityPolicy.NONE
    mode: SecurityMode = SecurityMode.NONE
    cert: str = ""
    key: str = ""
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class OpcUaSubscription:
    publishing_ms: float = 200.0
    sampling_ms: float = 100.0


@dataclass(frozen=True, slots=True)
class OpcUaPoint:
    """node is the id within the device's namespace_uri: s=..., i=..., g=..., b=..."""

    name: str
    node: str
    access: Access = Access.R
    # engineering = raw * scale + offset, e.g. scale -1 turns a device's
    # "generation is positive" into the site's passive sign convention.
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class OpcUaDevice:
    name: str
    endpoint: str
    namespace_uri: str
    points: tuple[OpcUaPoint, ...] = ()
    security: OpcUaSecurity = OpcUaSecurity()
    subscription: OpcUaSubscription | None = None
    timeout_s: float = 2.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
