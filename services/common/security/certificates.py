"""A development certificate authority: `gongji certs init DIR --principal ID …`.

It writes ``DIR/ca.pem`` and ``DIR/ca.key`` once, and for each principal ``DIR/<name>.pem``
and ``DIR/<name>.key``, where ``<name>`` is the SPIFFE ID's path with '/' as '-'
(``institution-H37010001``, ``service-payment-east``, ``service-gateway``). Each certificate carries its SPIFFE
ID as its one URI SAN; service certificates also name ``localhost``, ``127.0.0.1`` and the
hosts given, so peers can check them as servers. Files that exist are kept, so the command
can run on every start (docker-compose's one-shot ``certs`` step) without rotating keys.

Production deployments bring certificates from their own CA (SPIRE, a provincial PKI);
gongji only needs the three files per process.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.principals import Principal, PrincipalKind

CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=825)
# Principals that also serve: their certificates name hosts and may authenticate a server
# (the gateway's answers the institutions' HTTPS calls).
SERVICE_KINDS = (PrincipalKind.BINDING_SERVICE, PrincipalKind.PAYMENT_NODE, PrincipalKind.GATEWAY)
DEFAULT_HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class IssuedFiles:
    cert: Path
    key: Path
    created: bool


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    if private:
        os.chmod(temporary, 0o600)
    temporary.replace(path)


def _kept_pair(cert_file: Path, key_file: Path) -> bool:
    """Whether a certificate and its key exist, to be kept; neither does, to be written. One
    without the other is a ValueError: writing the pair anew would replace a file that exists
    (a CA certificate brought without its key, say)."""
    if cert_file.exists() != key_file.exists():
        there, missing = (cert_file, key_file) if cert_file.exists() else (key_file, cert_file)
        raise ValueError(f"{there} exists without {missing}: bring both, or remove it to have both written")
    return cert_file.exists()


def _subject_alternative_names(principal: Principal, hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(principal.spiffe_id)]
    if principal.kind not in SERVICE_KINDS:
        return names
    for host in dict.fromkeys([*DEFAULT_HOSTS, *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


class DevelopmentCA:
    """A CA kept in one folder; `open` reuses the one found there or makes it."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.directory = directory
        self._key = key
        self.certificate = certificate

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @classmethod
    def open(cls, directory: Path, name: str = "gongji development CA") -> DevelopmentCA:
        cert_file, key_file = directory / "ca.pem", directory / "ca.key"
        if _kept_pair(cert_file, key_file):
            try:
                key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
                certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
            except (ValueError, TypeError):
                problem = f"{cert_file} and {key_file} are not a PEM certificate and its unencrypted key"
                raise ValueError(problem) from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_file} is not an EC private key")
            return cls(directory, key, certificate)
        key = _new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        _write(key_file, _key_pem(key), private=True)
        _write(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, certificate)

    def files_of(self, principal: Principal) -> tuple[Path, Path]:
        return self.directory / f"{principal.file_stem}.pem", self.directory / f"{principal.file_stem}.key"

    def issue(self, principal: Principal, hosts: Sequence[str] = ()) -> IssuedFiles:
        """Writes the principal's certificate and key unless both exist already."""
        cert_file, key_file = self.files_of(principal)
        if _kept_pair(cert_file, key_file):
            return IssuedFiles(cert_file, key_file, created=False)
        names = _subject_alternative_names(principal, hosts)
        self._write_leaf(cert_file, key_file, principal.path, names, server=principal.kind in SERVICE_KINDS)
        return IssuedFiles(cert_file, key_file, created=True)

    def issue_uri(self, uri: str, stem: str) -> IssuedFiles:
        """A client certificate for any URI, e.g. one naming no gongji principal (to test its refusal)."""
        return self.issue_names([x509.UniformResourceIdentifier(uri)], stem)

    def issue_names(self, names: list[x509.GeneralName], stem: str) -> IssuedFiles:
        """A client certificate with exactly these subject alternative names (to test refusals)."""
        cert_file, key_file = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        self._write_leaf(cert_file, key_file, stem, names, server=False)
        return IssuedFiles(cert_file, key_file, created=True)

    def _write_leaf(
        self, cert_file: Path, key_file: Path, common_name: str, names: list[x509.GeneralName], server: bool
    ) -> None:
        key = _new_key()
        now = datetime.now(UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.certificate.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )  # fmt: skip
        _write(key_file, _key_pem(key), private=True)
        _write(cert_file, certificate.public_bytes(serialization.Encoding.PEM))


def spiffe_ids_in(certificate_pem: bytes) -> list[str]:
    """The SPIFFE IDs among a certificate's URI SANs."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [uri for uri in names.get_values_for_type(x509.UniformResourceIdentifier) if uri.startswith("spiffe://")]


def certificate_problem(certificate_pem: bytes, key_pem: bytes, ca_pem: bytes, now: datetime) -> str | None:
    """What makes a process's certificate unusable, in words an operator can act on; None when
    nothing does. Peers would refuse it at every handshake, with no word in this process's log:
    a key of another certificate, a certificate outside its validity, or one that no CA of the
    `--tls-ca` file signed (the chain may carry intermediates after the certificate)."""
    chain = x509.load_pem_x509_certificates(certificate_pem)
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return "the key file holds no unencrypted PEM private key"
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        return "the key file holds the key of another certificate"
    if now < leaf.not_valid_before_utc:
        return f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    if now > leaf.not_valid_after_utc:
        return f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: issue a new one"
    try:
        authorities = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        return "the CA file holds no PEM certificate"
    issuers = [*chain[1:], *authorities]
    certificate = leaf
    for _ in range(len(issuers)):
        issuer = next((c for c in issuers if c.subject == certificate.issuer and _signed(certificate, c)), None)
        if issuer is None:
            break
        if issuer in authorities:
            return None
        certificate = issuer
    return "no CA of the CA file signed the certificate: give the CA that issued it, or a certificate it issued"


def _signed(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
