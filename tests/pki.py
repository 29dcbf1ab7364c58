"""Certificates generated for the TLS tests: a CA, a server certificate for localhost, a good
client certificate, an expired one, one signed by a different CA, and an admin client."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key) -> None:
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _ca(folder: Path, stem: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{stem} test CA"))
        .issuer_name(_name(f"{stem} test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(folder, stem, cert, key)
    return cert, key


def _leaf(
    folder: Path,
    stem: str,
    common_name: str,
    ca,
    ca_key,
    *,
    expired: bool = False,
    server: bool = False,
) -> None:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
        if expired
        else (now - dt.timedelta(days=1), now + dt.timedelta(days=30))
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    _write(folder, stem, builder.sign(ca_key, hashes.SHA256()), key)


def make_pki(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca(folder, "ca")
    rogue, rogue_key = _ca(folder, "rogue-ca")
    _leaf(folder, "server", "localhost", ca, ca_key, server=True)
    _leaf(folder, "client", "rig1", ca, ca_key)
    _leaf(folder, "admin", "admin", ca, ca_key)
    _leaf(folder, "expired", "rig1", ca, ca_key, expired=True)
    _leaf(folder, "rogue", "rig1", rogue, rogue_key)
    return folder
