"""The thermal plant's OPC UA server (asyncua), with optional security and user login.

Security: the None endpoint is always there for the demo unless ``secure_only``;
with ``secure=True`` the server also offers Basic256Sha256 Sign and
SignAndEncrypt and Aes256_Sha256_RsaPss SignAndEncrypt, with a self-signed
certificate generated at start (``cryptography``) into ``pki_dir``. With
``users`` set, only those username/password pairs may log in (anonymous is off).
"""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from .faults import Faults
from .opcmap import OpcPoint

# UNECE codes for EUInformation (OPC 10000-8 5.6.3): UnitId = the code's bytes.
_UNECE = {"kW": ("KWT", "kW"), "kWh": ("KWH", "kWh"), "degC": ("CEL", "°C"), "W/m2": ("D54", "W/m²"),
          "m/s": ("MTS", "m/s"), "m3/h": ("MQH", "m³/h"), "%": ("P1", "%"), "frac": ("C62", "1"),
          "1": ("C62", "1")}
_VTYPES = {"Double": ua.VariantType.Double, "UInt32": ua.VariantType.UInt32,
           "Boolean": ua.VariantType.Boolean}
# (device, point, value) -> None if accepted, else a reason.
WriteHandler = Callable[[str, OpcPoint, float], str | None]


def eu_information(unit: str) -> ua.EUInformation:
    code, display = _UNECE.get(unit, ("C62", unit))
    unit_id = int.from_bytes(code.encode(), "big")
    return ua.EUInformation(NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                            UnitId=unit_id, DisplayName=ua.LocalizedText(display),
                            Description=ua.LocalizedText(unit))


class _Users(UserManager):
    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)

    def get_user(self, iserver, username=None, password=None, certificate=None):  # type: ignore[no-untyped-def]
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


@dataclass
class OpcUaOptions:
    secure: bool = False
    secure_only: bool = False
    users: Mapping[str, str] = field(default_factory=dict)
    pki_dir: Path | None = None


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class SimOpcUaServer:
    def __init__(self, site: str, points: list[OpcPoint], faults: Callable[[str], Faults],
                 on_write: WriteHandler, options: OpcUaOptions | None = None) -> None:
        self.site = site
        self.points = points
        self.faults = faults
        self.on_write = on_write
        self.options = options or OpcUaOptions()
        self.namespace_uri = f"urn:parkedge:sim:{site}"
        self.server: Server | None = None
        self.nodes: dict[str, tuple[OpcPoint, ua.NodeId]] = {}
        self.by_nodeid: dict[ua.NodeId, OpcPoint] = {}
        self.url = ""
        self.cert_path: Path | None = None

    async def start(self, host: str, port: int) -> str:
        logging.getLogger("asyncua").setLevel(logging.ERROR)
        port = port or free_port(host)
        srv = Server(user_manager=_Users(self.options.users) if self.options.users else None)
        await srv.init()
        self.url = f"opc.tcp://{host}:{port}/parkedge/{self.site}"
        srv.set_endpoint(self.url)
        srv.set_server_name(f"Park Edge simulated plant ({self.site})")
        await srv.set_application_uri(f"{self.namespace_uri}:server")
        policies = [] if self.options.secure_only else [ua.SecurityPolicyType.NoSecurity]
        if self.options.secure or self.options.secure_only:
            policies += [ua.SecurityPolicyType.Basic256Sha256_Sign,
                         ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                         ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt]
            await self._make_certificate(srv, host)
        srv.set_security_policy(policies)
        srv.set_security_IDs(["Username"] if self.options.users else ["Anonymous"])
        idx = await srv.register_namespace(self.namespace_uri)
        root = await srv.nodes.objects.add_folder(ua.NodeId("ParkSim", idx), ua.QualifiedName("ParkSim", idx))
        objs: dict[str, object] = {}
        for p in self.points:
            if p.obj not in objs:
                objs[p.obj] = await root.add_object(ua.NodeId(p.obj, idx), ua.QualifiedName(p.obj, idx))
            nid = ua.NodeId(p.node, idx)
            init = ua.Variant(False if p.vtype == "Boolean" else 0 if p.vtype == "UInt32" else 0.0, _VTYPES[p.vtype])
            var = await objs[p.obj].add_variable(nid, ua.QualifiedName(p.var, idx), init)  # type: ignore[attr-defined]
            eu = await var.add_property(ua.NodeId(f"{p.node}.EngineeringUnits", idx),
                                        ua.QualifiedName("EngineeringUnits", 0), eu_information(p.unit),
                                        datatype=ua.NodeId(ua.ObjectIds.EUInformation))
            _ = eu
            if p.writable:
                await var.set_writable(True)
            self.nodes[p.node] = (p, nid)
            self.by_nodeid[nid] = p
        self._hook_writes(srv)
        await srv.start()
        self.server = srv
        return self.url

    async def _make_certificate(self, srv: Server, host: str) -> None:
        pki = self.options.pki_dir or Path(tempfile.mkdtemp(prefix=f"parksim-{self.site}-pki-"))
        pki.mkdir(parents=True, exist_ok=True)
        key = cert_gen.generate_private_key()
        cert = cert_gen.generate_self_signed_app_certificate(
            key, f"parkedge-sim-{self.site}", {},
            [x509.UniformResourceIdentifier(f"{self.namespace_uri}:server"), x509.DNSName("localhost"),
             x509.DNSName(host)],
            extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=365)
        self.cert_path = pki / "server-cert.der"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        (pki / "server-key.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
        await srv.load_certificate(str(self.cert_path))
        await srv.load_private_key(str(pki / "server-key.pem"))

    def _hook_writes(self, srv: Server) -> None:
        """Intercept client writes: setpoints outside limits get BadOutOfRange."""
        service = srv.iserver.attribute_service
        original = service.write

        async def write(params: ua.WriteParameters, user: User = User(role=UserRole.Admin)) -> list[ua.StatusCode]:  # noqa: B008
            results: list[ua.StatusCode] = []
            for wv in params.NodesToWrite:
                p = self.by_nodeid.get(wv.NodeId)
                if p is not None and wv.AttributeId == ua.AttributeIds.Value:
                    f = self.faults(p.device)
                    if f.offline or f.bad_status:
                        results.append(ua.StatusCode(ua.StatusCodes.BadDeviceFailure))
                        continue
                    if not p.writable:
                        results.append(ua.StatusCode(ua.StatusCodes.BadNotWritable))
                        continue
                    value = wv.Value.Value.Value if wv.Value and wv.Value.Value else None
                    if not isinstance(value, int | float) or isinstance(value, bool):
                        results.append(ua.StatusCode(ua.StatusCodes.BadTypeMismatch))
                        continue
                    if self.on_write(p.device, p, float(value) * p.scale) is not None:
                        results.append(ua.StatusCode(ua.StatusCodes.BadOutOfRange))
                        continue
                sub = ua.WriteParameters(NodesToWrite=[wv])
                results.extend(await original(sub, user))
            return results

        service.write = write  # type: ignore[method-assign]

    async def refresh(self, values: Mapping[str, float]) -> None:
        """Push the park's values; devices with injected faults show a bad status instead.

        A stopped server (a restart under test) is skipped: the park runs on."""
        if self.server is None:
            return
        for p, nid in self.nodes.values():
            f = self.faults(p.device)
            if f.offline or f.bad_status:
                code = ua.StatusCodes.BadNotConnected if f.offline else ua.StatusCodes.BadDeviceFailure
                dv = ua.DataValue(StatusCode=ua.StatusCode(code))
            else:
                v = values.get(p.key)
                if v is None:
                    continue
                v = v / p.scale
                if p.vtype == "Boolean":
                    val = ua.Variant(bool(v >= 0.5), ua.VariantType.Boolean)
                elif p.vtype == "UInt32":
                    val = ua.Variant(int(max(v, 0)) & 0xFFFFFFFF, ua.VariantType.UInt32)
                else:
                    val = ua.Variant(float(v), ua.VariantType.Double)
                dv = ua.DataValue(val)
            await self.server.write_attribute_value(nid, dv)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
