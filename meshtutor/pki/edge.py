"""TLS at the edge: a stand-in public CA, ``kubernetes.io/tls`` Secrets, and curl's verdict.

An Istio ingress gateway or ingress-nginx presents a server certificate from a Secret; a
learner's curl checks it against its CA store (one-way TLS: curl shows no certificate). In a
real cluster the certificate comes from Let's Encrypt through cert-manager; the sandbox has no
Internet, so :class:`PublicCA` stands in for it with the same shape::

    CN=meshtutor Stand-in Public Root CA (20 years, what clients trust: public-ca.pem)
      ──> CN=meshtutor Stand-in Issuing CA R1 (10 years, sent by the server after the leaf)
        ──> CN=shop.example.com (90 days, SAN DNS names, serverAuth)

No browser or system store trusts this root, so curl needs ``--cacert public-ca.pem`` (or
``-k``). :func:`edge_trust` says what curl (OpenSSL) would print for a presented chain,
checking it for real: path, CA flags, signatures, validity, then curl's own host-name match.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import os
import random
import re
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshtutor.errors import InputFileError, MeshtutorError, PKIError, ProbeSpecError
from meshtutor.inputfiles import read_bytes
from meshtutor.pki._names import eku_names, is_ca, san_values, self_signed, signed_by
from meshtutor.pki.ca import (
    IssuedCertificate,
    PrivateKey,
    _ca_certificate,
    _CACert,
    _pkcs8_pem,
    _serial,
    _sign,
    generate_key,
    write_private_key,
)
from meshtutor.pki.clock import Clock, SystemClock, format_time

__all__ = [
    "EDGE_CERT_TTL",
    "FAKE_CERTIFICATE_HOST",
    "ISSUING_CA_TTL",
    "PUBLIC_ROOT_TTL",
    "CurlTrust",
    "EdgeCertificate",
    "PublicCA",
    "check_hosts",
    "check_secret_name",
    "edge_trust",
    "fake_certificate",
    "server_context",
    "tls_secret_manifest",
]

# Let's Encrypt: ISRG Root X1 lives 20 years, its issuing intermediates a few, leaves 90 days.
PUBLIC_ROOT_TTL = timedelta(days=7300)
ISSUING_CA_TTL = timedelta(days=3650)
EDGE_CERT_TTL = timedelta(days=90)

_ORG = "meshtutor demo"
ROOT_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
        x509.NameAttribute(NameOID.COMMON_NAME, "meshtutor Stand-in Public Root CA"),
    ]
)
ISSUING_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
        x509.NameAttribute(NameOID.COMMON_NAME, "meshtutor Stand-in Issuing CA R1"),
    ]
)

# Files of a CA directory. The root key is not kept: once it has signed the issuing CA it is
# thrown away, as a real root stays offline.
BUNDLE_FILE = "public-ca.pem"
ISSUING_CERT_FILE = "issuing-ca.pem"
ISSUING_KEY_FILE = "issuing-ca.key"

_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,  # ECDSA keys sign; they do not encrypt
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


# --- host names ------------------------------------------------------------------------------

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _check_host(host: str) -> str:
    """One SAN DNS name, lower-cased; a leading ``*.`` is a wildcard for one label."""
    name = host.strip().lower()
    if not name:
        raise PKIError("empty host name: give DNS names such as shop.example.com")
    if "://" in name or "/" in name or ":" in name:
        raise PKIError(
            f"host {host!r} is not a DNS name: give the bare name, e.g. shop.example.com "
            "(no scheme, port or path)"
        )
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise PKIError(
            f"host {host!r} is an IP address: the stand-in CA issues DNS names only, as "
            "ingress certificates carry them"
        )
    labels = name.removesuffix(".").split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        labels = labels[1:]
        if len(labels) < 2:
            raise PKIError(
                f"wildcard {host!r} is too wide: a wildcard covers one label under a domain "
                "of at least two labels, e.g. *.example.com"
            )
    elif "*" in name:
        raise PKIError(
            f"host {host!r}: a wildcard must be the whole leftmost label, e.g. *.example.com"
        )
    if len(labels) < 2:
        raise PKIError(
            f"host {host!r} is a single label: a public CA issues for a domain name such as "
            f"{name}.example.com"
        )
    for label in labels:
        if not _LABEL.match(label):
            raise PKIError(
                f"host {host!r}: label {label!r} is not a DNS label (letters, digits and '-', "
                "1-63 characters, not starting or ending with '-')"
            )
    full = ".".join(["*", *labels] if wildcard else labels)
    if len(full) > 253:
        raise PKIError(f"host {host[:40]!r}… is longer than 253 characters")
    return full


def check_hosts(hosts: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate and normalise DNS names for a certificate: lower-case, duplicates dropped.

    Raises :class:`PKIError` naming the first bad host.
    """
    if not hosts:
        raise PKIError("no host names: give at least one, e.g. shop.example.com")
    return tuple(dict.fromkeys(_check_host(host) for host in hosts))


# --- the stand-in public CA ------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeCertificate:
    """A server certificate for an ingress, as cert-manager stores it in a TLS Secret."""

    hosts: tuple[str, ...]
    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)
    issuer: x509.Certificate
    root: x509.Certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """What the server sends: the leaf, then the issuing CA (never the root)."""
        return (self.certificate, self.issuer)

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @cached_property
    def chain_pem(self) -> bytes:
        """``tls.crt``: leaf then issuing CA, as PEM."""
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in self.chain)

    @cached_property
    def root_pem(self) -> bytes:
        """The CA bundle a client trusts (``curl --cacert``): the root alone."""
        return self.root.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """``tls.key``: the private key as PKCS #8 PEM, made afresh on each call."""
        return _pkcs8_pem(self.private_key)


class PublicCA:
    """A stand-in for a public CA such as Let's Encrypt: a root and one issuing CA.

    :meth:`create` makes a new one (``seed`` makes it deterministic, as ``MeshCA`` does);
    :meth:`open` keeps one in a directory so repeated runs share the root.
    """

    def __init__(
        self,
        *,
        root: x509.Certificate,
        issuing: x509.Certificate,
        issuing_key: PrivateKey,
        clock: Clock | None = None,
        key_rng: random.Random | None = None,
    ) -> None:
        self.root = root
        self.issuing = issuing
        self._issuer = _CACert(issuing, issuing_key)
        self.clock: Clock = clock or SystemClock()
        self._key_rng = key_rng  # seeded CAs derive leaf keys and serials from it

    @classmethod
    def create(
        cls,
        *,
        seed: int | None = None,
        clock: Clock | None = None,
        not_before: datetime | None = None,
    ) -> PublicCA:
        """A new stand-in CA, valid from ``not_before`` (default: the clock's now).

        With ``seed`` the keys and serials come from it, so the same seed and time give
        byte-identical certificates (committed demo files, tests).
        """
        clock = clock or SystemClock()
        start = clock.now() if not_before is None else not_before
        key_rng = random.Random(f"edge-keys-{seed}") if seed is not None else None
        root_key = generate_key(rng=key_rng)
        root = _ca_certificate(
            ROOT_SUBJECT,
            root_key,
            signer=None,
            not_before=start,
            not_after=start + PUBLIC_ROOT_TTL,
            path_length=None,
            crl_sign=True,
            rng=key_rng,
        )
        issuing_key = generate_key(rng=key_rng)
        issuing = _ca_certificate(
            ISSUING_SUBJECT,
            issuing_key,
            signer=_CACert(root, root_key),
            not_before=start,
            not_after=start + ISSUING_CA_TTL,
            path_length=0,
            crl_sign=True,
            rng=key_rng,
        )
        return cls(
            root=root, issuing=issuing, issuing_key=issuing_key, clock=clock, key_rng=key_rng
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, clock: Clock | None = None) -> PublicCA:
        """The CA :meth:`save` wrote to ``directory``."""
        folder = Path(directory)
        try:
            root = x509.load_pem_x509_certificate((folder / BUNDLE_FILE).read_bytes())
            issuing = x509.load_pem_x509_certificate((folder / ISSUING_CERT_FILE).read_bytes())
            key = serialization.load_pem_private_key(
                (folder / ISSUING_KEY_FILE).read_bytes(), password=None
            )
        except (OSError, ValueError, TypeError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PKIError(
                f"cannot read the stand-in CA in {folder}: {detail}; delete the directory "
                "to start a new CA (certificates it issued will no longer verify)"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise PKIError(f"{folder / ISSUING_KEY_FILE}: not an ECDSA or RSA key")
        if not signed_by(issuing, root) or key.public_key() != issuing.public_key():
            raise PKIError(
                f"the stand-in CA files in {folder} do not belong together (the issuing CA is "
                "not signed by the root, or the key is not its key); delete the directory to "
                "start a new CA"
            )
        return cls(root=root, issuing=issuing, issuing_key=key, clock=clock)

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, clock: Clock | None = None) -> PublicCA:
        """The CA kept in ``directory``, created and saved there on first use."""
        if (Path(directory) / BUNDLE_FILE).exists():
            return cls.load(directory, clock=clock)
        ca = cls.create(clock=clock)
        ca.save(directory)
        return ca

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the bundle, the issuing CA and its key (0600) to ``directory``; return the
        bundle's path. The bundle is written last: its presence marks a complete CA."""
        folder = Path(directory)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private_key(folder / ISSUING_KEY_FILE, self._issuer.key)
            pem = serialization.Encoding.PEM
            (folder / ISSUING_CERT_FILE).write_bytes(self.issuing.public_bytes(pem))
            (folder / BUNDLE_FILE).write_bytes(self.root_pem)
        except OSError as exc:
            raise PKIError(
                f"cannot keep the stand-in CA in {folder}: {exc.strerror or exc}"
            ) from None
        return folder / BUNDLE_FILE

    @cached_property
    def root_pem(self) -> bytes:
        """The bundle clients trust (``public-ca.pem``)."""
        return self.root.public_bytes(serialization.Encoding.PEM)

    def __repr__(self) -> str:
        return f"PublicCA({self.root.subject.rfc4514_string()} → {self.issuing.subject.rfc4514_string()})"

    def issue(
        self,
        hosts: list[str] | tuple[str, ...],
        *,
        days: int = 90,
        not_before: datetime | None = None,
    ) -> EdgeCertificate:
        """A server certificate for ``hosts`` (SAN DNS names; CN the first), ``days`` long.

        Raises :class:`PKIError` for a bad host name, a non-positive ``days``, or a validity
        outside the issuing CA's.
        """
        names = check_hosts(hosts)
        if days < 1:
            raise PKIError(f"--days {days}: a certificate must be valid at least 1 day")
        start = self.clock.now() if not_before is None else not_before
        end = start + timedelta(days=days)
        ca_start, ca_end = self.issuing.not_valid_before_utc, self.issuing.not_valid_after_utc
        if start < ca_start or end > ca_end:
            raise PKIError(
                f"cannot issue {days} days from {format_time(start)}: the stand-in issuing CA "
                f"is valid from {format_time(ca_start)} to {format_time(ca_end)}; ask for "
                "fewer days, or delete the CA directory to start a new CA"
            )
        key = generate_key(rng=self._key_rng)
        # CN is limited to 64 characters; Let's Encrypt leaves it out for longer names.
        subject = (
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
            if len(names[0]) <= 64
            else x509.Name([])
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.issuing.subject)
            .public_key(key.public_key())
            .serial_number(_serial(self._key_rng))
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name) for name in names]),
                critical=not subject,  # RFC 5280 §4.2.1.6: critical when the subject is empty
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(self._issuer.authority_key_identifier, critical=False)
        )
        certificate = _sign(builder, self._issuer.key)
        return EdgeCertificate(names, certificate, key, self.issuing, self.root)


# --- the Secret ------------------------------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _check_object_name(value: str, what: str, label: bool) -> None:
    pattern, limit = (_DNS_LABEL, 63) if label else (_DNS_SUBDOMAIN, 253)
    if not pattern.match(value) or len(value) > limit:
        kind = "DNS label" if label else "DNS subdomain"
        raise MeshtutorError(
            f"{what} {value!r} is not a valid Kubernetes name: a lower-case RFC 1123 {kind} "
            f"(letters, digits, '-'{'' if label else ' and .'}; at most {limit} characters), "
            f"e.g. {'istio-system' if label else 'shop-example-com-tls'}"
        )


def check_secret_name(name: str, namespace: str) -> None:
    """Raise :class:`MeshtutorError` unless ``name`` and ``namespace`` are names the API
    server accepts for a Secret (RFC 1123 subdomain and label)."""
    _check_object_name(name, "Secret name", label=False)
    _check_object_name(namespace, "namespace", label=True)


def tls_secret_manifest(cert: EdgeCertificate, *, name: str, namespace: str) -> str:
    """The YAML of a ``kubernetes.io/tls`` Secret holding ``cert``, as ``kubectl create secret
    tls NAME --cert=... --key=... --dry-run=client -o yaml`` prints it, under a comment that
    says it is a demo certificate. Raises :class:`MeshtutorError` for an invalid name."""
    import yaml

    check_secret_name(name, namespace)
    doc = {
        "apiVersion": "v1",
        "data": {
            "tls.crt": base64.b64encode(cert.chain_pem).decode("ascii"),
            "tls.key": base64.b64encode(cert.key_pem()).decode("ascii"),
        },
        "kind": "Secret",
        "metadata": {"creationTimestamp": None, "name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
    }
    header = [
        f"Demo TLS certificate for {', '.join(cert.hosts)}",
        f"from the meshtutor stand-in public CA ({cert.root.subject.rfc4514_string()}):",
        "not a real CA; no browser or system store trusts it.",
        f"Valid {format_time(cert.not_before)} to {format_time(cert.not_after)}.",
        "tls.crt holds the certificate then the issuing CA; clients trust the root:",
        f"curl --cacert public-ca.pem https://{_example_host(cert.hosts)}/",
        "The private key is a throwaway demo key: never use it for anything real.",
    ]
    body = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1 << 20)
    return "".join(f"# {line}\n" for line in header) + str(body)


def _example_host(hosts: tuple[str, ...]) -> str:
    """A host a curl example can use: the first one that is not a wildcard."""
    plain = [host for host in hosts if not host.startswith("*.")]
    return plain[0] if plain else "www." + hosts[0].removeprefix("*.")


# --- what curl says --------------------------------------------------------------------------


class CurlTrust(Protocol):
    """The curl options that decide trust at the edge (``meshtutor.policy.probe.Probe``)."""

    @property
    def insecure(self) -> bool: ...

    @property
    def cacert(self) -> str | None: ...


def _resolve_cacert(name: str) -> Path:
    """curl reads ``--cacert`` from the current directory; the tutor's probes also find the
    bundled ``manifests/`` files (``--cacert edge/public-ca.pem``)."""
    from meshtutor.paths import manifests_dir

    path = Path(name).expanduser()
    if path.is_absolute() or path.exists():
        return path
    bundled = manifests_dir() / path
    return bundled if bundled.exists() else path


def _load_bundle(name: str) -> tuple[x509.Certificate, ...]:
    path = _resolve_cacert(name)
    try:
        data = read_bytes(path)  # bounded: a probe's --cacert /dev/zero must not read forever
    except InputFileError as exc:
        raise ProbeSpecError(f"--cacert {name}: {exc.reason} (curl exits 77)") from None
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise ProbeSpecError(
            f"--cacert {name}: no PEM certificate in the file (curl exits 77); give a CA "
            "bundle such as public-ca.pem"
        ) from None


# OpenSSL's X509_verify_cert_error_string() texts (OpenSSL 3), which curl prints after
# "SSL certificate problem: ".
_SIGNATURE_FAILURE = "certificate signature failure"  # 7
_NOT_YET_VALID = "certificate is not yet valid"  # 9
_EXPIRED = "certificate has expired"  # 10
_SELF_SIGNED = "self-signed certificate"  # 18
_SELF_SIGNED_IN_CHAIN = "self-signed certificate in certificate chain"  # 19
_NO_LOCAL_ISSUER = "unable to get local issuer certificate"  # 20
_INVALID_CA = "invalid CA certificate"  # 24
_PATH_LENGTH = "path length constraint exceeded"  # 25
_PURPOSE = "unsupported certificate purpose"  # 26
_MAX_DEPTH = 100  # OpenSSL's default verify depth


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.key_identifier


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _may_have_issued(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    """OpenSSL's ``X509_check_issued`` without the signature: names, then the key
    identifiers. A root of the same name but another key (a second stand-in CA) is no match."""
    if issuer.subject != cert.issuer:
        return False
    aki, ski = _authority_key_id(cert), _subject_key_id(issuer)
    return aki is None or ski is None or aki == ski


def _openssl_verify(
    presented: list[x509.Certificate], trusted: tuple[x509.Certificate, ...], at: datetime
) -> str | None:
    """What OpenSSL's ``X509_verify_cert`` says, as curl configures it: trusted-first path
    building with partial chains allowed (a bundle holding the intermediate is enough)."""
    prints = {cert.fingerprint(hashes.SHA256()) for cert in trusted}
    path = [presented[0]]
    untrusted = list(presented[1:])
    anchored = presented[0].fingerprint(hashes.SHA256()) in prints
    while not anchored and len(path) <= _MAX_DEPTH:
        current = path[-1]
        if self_signed(current):
            break
        issuer = next((c for c in trusted if _may_have_issued(c, current)), None)
        if issuer is not None:
            path.append(issuer)
            anchored = True
            break
        issuer = next(
            (c for c in untrusted if c not in path and _may_have_issued(c, current)), None
        )
        if issuer is None:
            break
        path.append(issuer)
        anchored = issuer.fingerprint(hashes.SHA256()) in prints
    if not anchored:
        if self_signed(path[-1]):
            return _SELF_SIGNED if len(path) == 1 else _SELF_SIGNED_IN_CHAIN
        return _NO_LOCAL_ISSUER
    # check_chain: the leaf may serve TLS; every certificate above it is a CA within pathlen.
    leaf_eku = eku_names(path[0])
    if leaf_eku and not {"serverAuth", "anyExtendedKeyUsage"} & set(leaf_eku):
        return _PURPOSE
    for index, cert in enumerate(path[1:], start=1):
        if not is_ca(cert):
            return _INVALID_CA
        try:
            if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign:
                return _INVALID_CA
        except x509.ExtensionNotFound:
            pass
        limit = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
        if limit is not None and index - 1 > limit:
            return _PATH_LENGTH
    # internal_verify: from the trust anchor down, each signature then each validity.
    for index in reversed(range(len(path))):
        cert = path[index]
        if index < len(path) - 1 and not signed_by(cert, path[index + 1]):
            return _SIGNATURE_FAILURE
        if at < cert.not_valid_before_utc:
            return _NOT_YET_VALID
        if at > cert.not_valid_after_utc:
            return _EXPIRED
    return None


def _wildcard_match(pattern: str, host: str) -> bool:
    """curl's ``Curl_cert_hostcheck``: ``*.`` as the whole leftmost label matches exactly one
    non-empty label, and only under at least two more labels (``*.com`` matches nothing)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if not pattern.startswith("*.") or pattern.count(".") < 2 or _is_ip(host):
        return pattern == host
    first, dot, rest = host.partition(".")
    return bool(first and dot) and rest == pattern[2:]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _curl_hostcheck(leaf: x509.Certificate, host: str) -> str | None:
    """curl's ``ossl_verifyhost``: the SAN of the host's type, else the subject CN."""
    sans = san_values(leaf)
    dns = [str(n.value) for n in sans if isinstance(n, x509.DNSName)]
    ips = [n.value for n in sans if isinstance(n, x509.IPAddress)]
    if dns or ips:
        if _is_ip(host):
            address = ipaddress.ip_address(host.strip("[]"))
            matched = any(address == ip for ip in ips)
        else:
            matched = any(_wildcard_match(name, host) for name in dns)
        if matched:
            return None
        return f"SSL: no alternative certificate subject name matches target host name '{host}'"
    common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not common:
        return "SSL: unable to obtain common name from peer certificate"
    cn = str(common[-1].value)
    if _wildcard_match(cn, host):
        return None
    return f"SSL: certificate subject name '{cn}' does not match target host name '{host}'"


def edge_trust(
    probe: CurlTrust, chain_pem: bytes | None, host: str, *, now: datetime | None = None
) -> str | None:
    """What curl prints when it connects to ``host`` and the server presents ``chain_pem``
    (leaf first; None for a self-signed built-in certificate such as ingress-nginx's fake
    one): None when curl accepts it, else its error for exit code 60.

    ``-k`` accepts anything. Without ``--cacert`` curl uses the system store, which trusts
    neither the stand-in root nor a self-signed certificate. A missing or unreadable
    ``--cacert`` file raises :class:`ProbeSpecError` (curl would exit 77).
    """
    if probe.insecure:
        return None  # -k turns off both the chain and the host-name check
    trusted = _load_bundle(probe.cacert) if probe.cacert else ()
    pem = fake_certificate()[0] if chain_pem is None else chain_pem
    try:
        presented = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise PKIError("the server's certificate chain is not PEM") from None
    at = SystemClock().now() if now is None else now
    problem = _openssl_verify(presented, trusted, at)
    if problem is not None:
        return f"SSL certificate problem: {problem}"
    return _curl_hostcheck(presented[0], host)


# --- a real TLS server -----------------------------------------------------------------------


@dataclass(frozen=True)
class _PEMCredential:
    """A key and chain in the two members ``tlsctx.load_credential`` reads."""

    chain_pem: bytes
    key: bytes = field(repr=False)

    def key_pem(self) -> bytes:
        return self.key


def server_context(chain_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """An ingress proxy's context: TLS 1.2 or later, presents ``chain_pem``, asks for no
    client certificate (one-way TLS), offers ALPN http/1.1. The key never touches a disk."""
    from meshtutor.pki.tlsctx import load_credential

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    try:
        # load_credential reads only chain_pem and key_pem(), which this pair provides.
        load_credential(context, cast("IssuedCertificate", _PEMCredential(chain_pem, key_pem)))
    except ssl.SSLError as exc:
        raise PKIError(f"the server certificate and key do not load: {exc.reason or exc}") from None
    return context


FAKE_CERTIFICATE_HOST = "ingress.local"


@functools.cache
def fake_certificate() -> tuple[bytes, bytes]:
    """ingress-nginx's "Kubernetes Ingress Controller Fake Certificate" (``chain_pem``,
    ``key_pem``): self-signed, RSA 2048, one year from now, SAN ingress.local, made once per
    process as the controller makes it at start-up (``internal/net/ssl``)."""
    key = generate_key("rsa")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, "Kubernetes Ingress Controller Fake Certificate"
            ),
        ]
    )
    start = SystemClock().now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(FAKE_CERTIFICATE_HOST)]), critical=False
        )
    )
    certificate = _sign(builder, key)
    return certificate.public_bytes(serialization.Encoding.PEM), _pkcs8_pem(key)
