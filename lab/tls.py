"""The lab's certificate authority and the stand-in's certificates.

The lab CA is made once and kept in the image cache (``lab-ca/``, shared by every lab on this
machine); each box trusts it the way a real server trusts a CA: the certificate in
/usr/local/share/ca-certificates and ``update-ca-certificates`` run when the box is made (the
lab does that, never the product). The stand-in presents a certificate from that CA for the
real relay names (lab/relay_names.py). An impostor CA, trusted by no box, issues a certificate
for the very same names: the stand-in's ``impostor`` mode presents it.
"""
from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
from pathlib import Path

from . import addresses as A
from .relay_names import CERTIFICATE_NAMES

CA_DIR_NAME = "lab-ca"
CA_IN_BOX = "/usr/local/share/ca-certificates/lockdown-lab-ca.crt"
VALID_DAYS = 3650


def ensure_lab_ca(cache_dir: Path) -> tuple[Path, Path]:
    """The lab CA's certificate and key, made once (under a lock: labs start in parallel)."""
    directory = Path(cache_dir) / CA_DIR_NAME
    return _ensure_ca(directory, "lockdown lab CA")


def ensure_impostor_ca(state_dir: Path) -> tuple[Path, Path]:
    """A CA no box trusts: what someone on the path would sign with."""
    return _ensure_ca(Path(state_dir) / "impostor-ca", "impostor CA (trusted by no box)")


def issue_relay_certificate(ca: tuple[Path, Path], cert: Path, key: Path) -> None:
    """A server certificate for every relay name (and the stand-in's addresses), from ``ca``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(Path(ca[0]).read_bytes())
    ca_key = _load_key(Path(ca[1]))
    private_key = ec.generate_private_key(ec.SECP256R1())
    start = _now() - datetime.timedelta(days=1)
    names = [x509.DNSName(name) for name in CERTIFICATE_NAMES]
    addresses = [x509.IPAddress(ipaddress.ip_address(a)) for a in (A.GATEWAY_V4, A.GATEWAY_V6)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERTIFICATE_NAMES[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names + addresses), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key, private_key)
    # the chain a server sends: its own certificate (the CA is the client's trust anchor)
    cert.write_bytes(_pem(certificate))


def _ensure_ca(directory: Path, common_name: str) -> tuple[Path, Path]:
    cert, key = directory / "ca.pem", directory / "ca.key"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cert.exists() and key.exists()):
            _make_ca(cert, key, common_name)
    return cert, key


def _make_ca(cert: Path, key: Path, common_name: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = _now() - datetime.timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()),
                       critical=False)
        .sign(private_key, hashes.SHA256())
    )
    _write_key(key, private_key)
    tmp = cert.with_suffix(".tmp")
    tmp.write_bytes(_pem(certificate))
    os.replace(tmp, cert)


def _write_key(path: Path, private_key) -> None:
    from cryptography.hazmat.primitives import serialization

    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    os.replace(tmp, path)


def _load_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _pem(certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.PEM)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
