"""Mesh PKI: certificate authorities, workload identities, rotation, verification, inspection.

    ca = MeshCA.create("istio", clock=ManualClock())      # or "linkerd", key_type="rsa"
    sleep = ca.credential("foo", "sleep")                  # a renewing WorkloadCredential
    ca.clock.advance(timedelta(hours=24)); sleep.refresh() # rotated twice (every ~12 h)
    ca.verify(sleep.chain, expected_identity="spiffe://cluster.local/ns/foo/sa/sleep")
    describe_credential(sleep).to_dict()                   # plain data for views and JSON
    server_context(sleep) / client_context(sleep)          # ssl contexts for real TLS 1.3

Names are exported lazily (PEP 562) so that ``import meshtutor.pki.cli`` does not import
``cryptography``: the CLI imports its subcommands on every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshtutor.pki.ca import (
        ISTIO_ROOT_TTL,
        LINKERD_CA_TTL,
        WORKLOAD_TTL,
        IssuedCertificate,
        KeyType,
        MeshCA,
        PrivateKey,
        generate_key,
        write_private_key,
    )
    from meshtutor.pki.clock import (
        Clock,
        FastForwardClock,
        ManualClock,
        SystemClock,
        parse_offset,
        parse_time,
    )
    from meshtutor.pki.identity import (
        ISTIO_ROTATION,
        LINKERD_ROTATION,
        Mesh,
        RotationPolicy,
        WorkloadCredential,
        WorkloadIdentity,
    )
    from meshtutor.pki.inspection import (
        CertChain,
        CertificateInfo,
        CredentialInfo,
        EnvoySecrets,
        SubjectAltName,
        describe_certificate,
        describe_chain,
        describe_credential,
        load_certificates,
        load_envoy_secrets,
    )
    from meshtutor.pki.tlsctx import (
        client_context,
        explain_handshake_error,
        server_context,
        verify_peer,
    )
    from meshtutor.pki.verify import Reason, Verification, verify_chain

_MODULES: dict[str, tuple[str, ...]] = {
    "ca": (
        "ISTIO_ROOT_TTL",
        "LINKERD_CA_TTL",
        "WORKLOAD_TTL",
        "IssuedCertificate",
        "KeyType",
        "MeshCA",
        "PrivateKey",
        "generate_key",
        "write_private_key",
    ),
    "clock": (
        "Clock",
        "FastForwardClock",
        "ManualClock",
        "SystemClock",
        "parse_offset",
        "parse_time",
    ),
    "identity": (
        "ISTIO_ROTATION",
        "LINKERD_ROTATION",
        "Mesh",
        "RotationPolicy",
        "WorkloadCredential",
        "WorkloadIdentity",
    ),
    "inspection": (
        "CertChain",
        "CertificateInfo",
        "CredentialInfo",
        "EnvoySecrets",
        "SubjectAltName",
        "describe_certificate",
        "describe_chain",
        "describe_credential",
        "load_certificates",
        "load_envoy_secrets",
    ),
    "tlsctx": ("client_context", "explain_handshake_error", "server_context", "verify_peer"),
    "verify": ("Reason", "Verification", "verify_chain"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "ISTIO_ROOT_TTL",
    "ISTIO_ROTATION",
    "LINKERD_CA_TTL",
    "LINKERD_ROTATION",
    "WORKLOAD_TTL",
    "CertChain",
    "CertificateInfo",
    "Clock",
    "CredentialInfo",
    "EnvoySecrets",
    "FastForwardClock",
    "IssuedCertificate",
    "KeyType",
    "ManualClock",
    "Mesh",
    "MeshCA",
    "PrivateKey",
    "Reason",
    "RotationPolicy",
    "SubjectAltName",
    "SystemClock",
    "Verification",
    "WorkloadCredential",
    "WorkloadIdentity",
    "client_context",
    "describe_certificate",
    "describe_chain",
    "describe_credential",
    "explain_handshake_error",
    "generate_key",
    "load_certificates",
    "load_envoy_secrets",
    "parse_offset",
    "parse_time",
    "server_context",
    "verify_chain",
    "verify_peer",
    "write_private_key",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'meshtutor.pki' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"meshtutor.pki.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
