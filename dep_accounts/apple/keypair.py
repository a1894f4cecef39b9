"""The DEP account's key pair: an RSA key, and the certificate ABM takes as its public key.

Pure functions, no Django. See docs/apple-dep.md section 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.views.decorators.debug import sensitive_variables


@dataclass(frozen=True)
class KeyPair:
    private_key_pem: bytes = field(repr=False)
    certificate_pem: bytes


@sensitive_variables()
def key_pair_generate(*, common_name: str) -> KeyPair:
    """An RSA-2048 key and the self-signed certificate an admin uploads to ABM as the public key."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mdmportal"),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        # A day of slack so a clock running behind on Apple's side does not reject it.
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=False,
        )
        .sign(private_key, hashes.SHA256())
    )
    private_key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Validated once, here, as it is made: the portal keeps it under Fernet (tamper-evident),
    # so every later load skips cryptography's costly RSA consistency check.
    serialization.load_pem_private_key(private_key_pem, password=None)
    return KeyPair(
        private_key_pem=private_key_pem,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
    )
