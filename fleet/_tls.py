"""A small certificate authority for a demo or a test territory: the hub makes its own CA and
a server certificate for its names, so HTTP (enrollment) and MQTT run over TLS without a
public certificate. Gateways get the CA certificate (`estran edge enroll --ca`).

Production uses real certificates (docs/security.md); this is for a territory that has none
yet. Files in `<data>/fleet/tls/`: `ca.crt`, `ca.key` (0600), `server.crt`, `server.key`
(0600). ECDSA P-256: every TLS stack on a gateway speaks it.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet._secrets import private_dir, write_secret

CA_DAYS = 3650
SERVER_DAYS = 825


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    @property
    def ca_fingerprint(self) -> str:
        """SHA-256 of the CA certificate (DER), hex: what a technician compares."""
        cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def tls_files(directory: Path) -> TlsFiles | None:
    """The files in `directory` if they are all there."""
    files = TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    ok = all(p.exists() for p in (files.ca_cert, files.server_cert, files.server_key))
    return files if ok else None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def init_tls(directory: Path, hosts: list[str], *, territory: str = "Estran") -> TlsFiles:
    """Make the CA (kept if it exists) and a new server certificate for `hosts`."""
    if not hosts:
        raise ValueError("at least one host name or address")
    private_dir(directory)
    now = datetime.datetime.now(datetime.UTC)
    ca_key_path, ca_cert_path = directory / "ca.key", directory / "ca.crt"
    if ca_key_path.exists() and ca_cert_path.exists():
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path}: not an EC key")
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{territory} hub CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_secret(ca_key_path, _key_pem(ca_key))
        write_secret(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_secret(directory / "server.key", _key_pem(key))
    write_secret(
        directory / "server.crt", cert.public_bytes(serialization.Encoding.PEM), mode=0o644
    )
    files = tls_files(directory)
    assert files is not None
    return files


__all__ = ["TlsFiles", "init_tls", "tls_files"]
