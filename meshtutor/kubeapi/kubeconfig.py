"""The sandbox API's own PKI, and the kubeconfig a learner points ``KUBECONFIG`` at.

Shaped like kind's cluster (kind runs kubeadm, and ``kind get kubeconfig`` hands out kubeadm's
``admin.conf``)::

    CN=meshtutor-sandbox-ca (1 year)
      ──> CN=kube-apiserver, SAN IP 127.0.0.1, DNS localhost (serverAuth, 1 year)
      ──> CN=kubernetes-admin, O=kubeadm:cluster-admins (clientAuth, 1 year)

Keys are ECDSA P-256. The files live in one directory (0700; keys 0600) and are reused across
runs while they are valid and belong together, so a kubeconfig merged into ``~/.kube/config``
keeps working on the next ``serve``; anything broken, mismatched or within a day of expiry is
issued afresh. The CA's own key is never written: nothing is signed after the three
certificates are made, and a leftover CA key would let anything sign itself in.

The client certificate's organisation is kubeadm's group for ``admin.conf`` since Kubernetes
1.29 (``kubeadm:cluster-admins``, bound to the ``cluster-admin`` ClusterRole; kubernetes
cmd/kubeadm/app/constants/constants.go ``ClusterAdminsGroupAndClusterRoleBinding``).
``system:masters`` is now only in ``super-admin.conf``, the break-glass credential kubeadm
tells admins not to share; a learner's kind kubeconfig names the same user and group as this
one (``kubectl auth whoami``).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import ssl
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from meshtutor.errors import InputFileError, PKIError

__all__ = [
    "CA_COMMON_NAME",
    "CLIENT_GROUP",
    "CLIENT_USER",
    "VALIDITY",
    "APICredentials",
    "KubeconfigUpdate",
    "check_kubeconfig_path",
    "client_groups",
    "client_user",
    "default_credentials_dir",
    "default_kubeconfig_path",
    "issue_credentials",
    "remove_from_kubeconfig",
    "server_ssl_context",
    "write_kubeconfig",
]

CA_COMMON_NAME = "meshtutor-sandbox-ca"
#: kubeadm's API server certificate CN (constants.go ``APIServerCertCommonName``).
SERVER_COMMON_NAME = "kube-apiserver"
CLIENT_USER = "kubernetes-admin"
CLIENT_GROUP = "kubeadm:cluster-admins"
#: kubeadm's ``CertificateValidityPeriod`` for what it signs; kind inherits it.
VALIDITY = timedelta(days=365)
#: kubeadm's ``CertificateBackdate``: a client whose clock is a little behind still accepts.
BACKDATE = timedelta(minutes=5)
#: Issued afresh when less than this is left, so no session meets the expiry.
RENEW_BEFORE = timedelta(days=1)
#: The server certificate's names: the API listens on 127.0.0.1 only, never another interface.
SERVER_IPS = ("127.0.0.1",)
SERVER_DNS = ("localhost",)

_FILES = {
    "ca": "ca.crt",
    "server_cert": "server.crt",
    "server_key": "server.key",
    "client_cert": "client.crt",
    "client_key": "client.key",
}
#: Certificates and keys are a few hundred bytes; anything bigger is not ours.
_MAX_FILE = 64 * 1024
#: How long a kubeconfig lock held by another writer (kubectl holds it for milliseconds) is
#: waited for before giving up.
_LOCK_WAIT = 2.0


@dataclass(frozen=True)
class APICredentials:
    """PEM bytes of the sandbox API's CA, server and client certificates and keys."""

    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes = field(repr=False)
    client_cert_pem: bytes
    client_key_pem: bytes = field(repr=False)


def default_credentials_dir() -> Path:
    """``<data dir>/sandbox-api``: where :func:`issue_credentials` keeps the files."""
    from meshtutor.paths import data_dir

    return data_dir() / "sandbox-api"


def default_kubeconfig_path() -> Path:
    """``<data dir>/kubeconfig``: a kubeconfig of meshtutor's own, so a learner's
    ``~/.kube/config`` is only touched when they ask for it."""
    from meshtutor.paths import data_dir

    return data_dir() / "kubeconfig"


# --- certificates ------------------------------------------------------------------------------


def issue_credentials(directory: Path, *, now: datetime | None = None) -> APICredentials:
    """The credentials kept in ``directory``, issued afresh (and written there) when missing,
    unreadable, not belonging together, or expiring within :data:`RENEW_BEFORE`.

    ``now`` is for tests. Raises :class:`PKIError` in one line when the directory cannot be
    created or written.
    """
    at = now or datetime.now(UTC)
    folder = Path(directory)
    kept = _load(folder, at)
    if kept is not None:
        _narrow(folder)
        return kept
    creds = _issue(at)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _narrow(folder)
        for name, filename in _FILES.items():
            secret = name.endswith("_key")
            _write_atomic(
                folder / filename, getattr(creds, f"{name}_pem"), 0o600 if secret else 0o644
            )
    except OSError as exc:
        raise PKIError(
            f"cannot keep the sandbox API's certificates in {folder}: "
            f"{exc.strerror or exc}; set MESHTUTOR_HOME to a folder you can write"
        ) from None
    return creds


def _narrow(folder: Path) -> None:
    """Directory 0700 and keys 0600, also for files someone widened since: they are keys."""
    with contextlib.suppress(OSError):
        if stat.S_IMODE(folder.stat().st_mode) != 0o700:
            folder.chmod(0o700)
        for name, filename in _FILES.items():
            path = folder / filename
            if (
                name.endswith("_key")
                and path.exists()
                and stat.S_IMODE(path.stat().st_mode) != 0o600
            ):
                path.chmod(0o600)


def _issue(at: datetime) -> APICredentials:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from meshtutor.pki.ca import (
        _NOT_A_CA,
        _ca_certificate,
        _CACert,
        _pkcs8_pem,
        _sign,
        generate_key,
    )
    from meshtutor.pki.edge import _LEAF_KEY_USAGE

    start, end = at - BACKDATE, at + VALIDITY
    ca_key = generate_key()
    ca_cert = _ca_certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)]),
        ca_key,
        signer=None,
        not_before=start,
        not_after=end,
        path_length=0,
        crl_sign=False,
    )
    ca = _CACert(ca_cert, ca_key)

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, san: x509.SubjectAlternativeName | None
    ) -> tuple[bytes, bytes]:
        key = generate_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(_NOT_A_CA, critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)  # ECDSA: signs, never encrypts
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(ca.authority_key_identifier, critical=False)
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        cert = _sign(builder, ca_key)
        return cert.public_bytes(serialization.Encoding.PEM), _pkcs8_pem(key)

    server_cert, server_key = leaf(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_COMMON_NAME)]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
            + [x509.DNSName(name) for name in SERVER_DNS]
        ),
    )
    client_cert, client_key = leaf(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, CLIENT_GROUP),
                x509.NameAttribute(NameOID.COMMON_NAME, CLIENT_USER),
            ]
        ),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        None,
    )
    return APICredentials(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        server_cert_pem=server_cert,
        server_key_pem=server_key,
        client_cert_pem=client_cert,
        client_key_pem=client_key,
    )


def _load(folder: Path, at: datetime) -> APICredentials | None:
    """The credentials in ``folder`` if every file is there, parses, belongs to the others
    and stays valid for :data:`RENEW_BEFORE`; else None (the caller issues new ones)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from meshtutor.pki._names import is_ca, self_signed, signed_by

    pems: dict[str, bytes] = {}
    for name, filename in _FILES.items():
        try:
            with open(folder / filename, "rb") as handle:
                data = handle.read(_MAX_FILE + 1)
        except OSError:
            return None
        if len(data) > _MAX_FILE:
            return None
        pems[name] = data
    try:
        ca = x509.load_pem_x509_certificate(pems["ca"])
        server = x509.load_pem_x509_certificate(pems["server_cert"])
        client = x509.load_pem_x509_certificate(pems["client_cert"])
        server_key = serialization.load_pem_private_key(pems["server_key"], password=None)
        client_key = serialization.load_pem_private_key(pems["client_key"], password=None)
    except (ValueError, TypeError):
        return None
    if not (is_ca(ca) and self_signed(ca) and signed_by(server, ca) and signed_by(client, ca)):
        return None
    if server_key.public_key() != server.public_key():
        return None
    if client_key.public_key() != client.public_key():
        return None
    for cert in (ca, server, client):
        if not cert.not_valid_before_utc <= at or cert.not_valid_after_utc - at < RENEW_BEFORE:
            return None
    if _server_names(server) != (set(SERVER_IPS), set(SERVER_DNS)):
        return None
    if _subject_values(client) != (CLIENT_USER, (CLIENT_GROUP,)):
        return None
    return APICredentials(
        ca_pem=pems["ca"],
        server_cert_pem=pems["server_cert"],
        server_key_pem=pems["server_key"],
        client_cert_pem=pems["client_cert"],
        client_key_pem=pems["client_key"],
    )


def _server_names(cert: Any) -> tuple[set[str], set[str]]:
    from cryptography import x509

    from meshtutor.pki._names import san_values

    names = san_values(cert)
    ips = {str(n.value) for n in names if isinstance(n, x509.IPAddress)}
    dns = {str(n.value) for n in names if isinstance(n, x509.DNSName)}
    return ips, dns


def _subject_values(cert: Any) -> tuple[str | None, tuple[str, ...]]:
    from cryptography.x509.oid import NameOID

    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(common[0].value) if common else None), tuple(str(o.value) for o in orgs)


# --- TLS ---------------------------------------------------------------------------------------


def server_ssl_context(creds: APICredentials) -> ssl.SSLContext:
    """The API server's TLS: 1.2 or later (kubectl's Go TLS negotiates 1.3), presents the
    server certificate, and asks for a client certificate without requiring one.

    ``CERT_OPTIONAL``: a request without a certificate completes the handshake and reaches the
    HTTP layer, which answers ``401 Unauthorized`` with a Status as kube-apiserver does for
    anonymous requests it does not accept; a certificate that does not chain to the sandbox CA
    fails the handshake (OpenSSL verifies whatever is presented).
    """
    from meshtutor.pki.edge import server_context

    context = server_context(creds.server_cert_pem, creds.server_key_pem)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=creds.ca_pem.decode("ascii"))
    return context


def _subject(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> list[tuple[str, str]]:
    if ssl_object is None:
        return []
    # getpeercert() is empty without a certificate and, under CERT_OPTIONAL, only holds one
    # that verified against the sandbox CA.
    peer = ssl_object.getpeercert()
    if not peer:
        return []
    subject: Any = peer.get("subject", ())
    return [(str(key), str(value)) for rdn in subject for key, value in rdn]


def client_user(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The user a verified client certificate names (its CN, as kube-apiserver's x509
    authenticator reads it), or None without one."""
    return next((value for key, value in _subject(ssl_object) if key == "commonName"), None)


def client_groups(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> tuple[str, ...]:
    """The groups of a verified client certificate (its O values), for ``kubectl auth whoami``."""
    return tuple(value for key, value in _subject(ssl_object) if key == "organizationName")


# --- the kubeconfig ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeconfigUpdate:
    """What :func:`write_kubeconfig` did, for the lines ``serve`` prints."""

    path: Path
    created: bool
    #: the current-context before, when it was another one (kind switches it too)
    previous_context: str | None = None
    #: the file had comments, which a YAML round trip drops (as ``kubectl config`` does)
    dropped_comments: bool = False

    def notes(self) -> list[str]:
        lines = []
        if self.previous_context:
            lines.append(
                f"current-context was {self.previous_context!r}; switch back with "
                f"`kubectl config use-context {self.previous_context}`"
            )
        if self.dropped_comments:
            lines.append(f"{self.path}: its comments were not kept (kubectl config drops them too)")
        return lines


def check_kubeconfig_path(path: Path) -> None:
    """Fail early, before a sandbox boots, if ``path`` cannot take the kubeconfig: an existing
    file that is not a kubeconfig (or not a file), or a folder that cannot be made."""
    target = _real(Path(path))
    if target.exists():
        _read_config(Path(path), target)
        return
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise InputFileError(
            f"cannot write the kubeconfig here: {parent} is not a folder", source=str(path)
        )


def write_kubeconfig(
    path: Path, server_url: str, creds: APICredentials, *, context: str = "meshtutor"
) -> KubeconfigUpdate:
    """Write the cluster, user and context ``context`` (all three named so, as kind names
    them ``kind-NAME``) into ``path``, creating it (0600) or merging into it.

    Merging follows kind (pkg/cluster/internal/kubeconfig/internal/kubeconfig/merge.go):
    entries of other names, ``preferences`` and unknown fields stay as they are, ours are
    replaced in place, and ``current-context`` becomes ours, so ``kubectl`` talks to the
    sandbox at once. A ``namespace`` the learner set on our context (``kubectl config
    set-context --current --namespace demo``) is kept. Comments are lost in the round trip.

    The file is written whole to a temporary file in the same folder and renamed over the old
    one, under client-go's ``PATH.lock`` (tools/clientcmd/loader.go ``lockFile``), so neither
    a crash nor a concurrent ``kubectl config`` leaves half a file. A symlink is written
    through to its target, as kubectl does.
    """
    given = Path(path)
    target = _real(given)
    with _locked(given):
        created = not target.exists()
        config, text = ({}, "") if created else _read_config(given, target)
        previous = config.get("current-context")
        merged = _merge(config, context, server_url, creds)
        _write_config(given, target, merged)
    return KubeconfigUpdate(
        path=given,
        created=created,
        previous_context=previous if previous and previous != context else None,
        dropped_comments=_has_comments(text),
    )


def remove_from_kubeconfig(path: Path, context: str = "meshtutor") -> bool:
    """Remove the cluster, user and context ``context`` from ``path``; unset
    ``current-context`` if it was ours (as ``kind delete cluster`` does). Returns whether the
    file changed; a missing file is left missing."""
    given = Path(path)
    target = _real(given)
    if not target.exists():
        return False
    with _locked(given):
        config, _ = _read_config(given, target)
        changed = False
        for section in ("clusters", "users", "contexts"):
            entries = config.get(section)
            if isinstance(entries, list):
                kept = [e for e in entries if not _named(e, context)]
                changed |= len(kept) != len(entries)
                config[section] = kept
        if config.get("current-context") == context:
            config["current-context"] = ""
            changed = True
        if changed:
            _write_config(given, target, config)
    return changed


def _named(entry: object, name: str) -> bool:
    return isinstance(entry, dict) and entry.get("name") == name


def _merge(
    config: dict[str, Any], name: str, server_url: str, creds: APICredentials
) -> dict[str, Any]:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    contexts = config.get("contexts")
    listed = contexts if isinstance(contexts, list) else []
    old_context = next((e.get("context") for e in listed if _named(e, name)), None)
    ours: dict[str, Any] = {"cluster": name, "user": name}
    if isinstance(old_context, dict) and isinstance(old_context.get("namespace"), str):
        ours["namespace"] = old_context["namespace"]
    entries = {
        "clusters": {
            "cluster": {"certificate-authority-data": b64(creds.ca_pem), "server": server_url},
            "name": name,
        },
        "contexts": {"context": ours, "name": name},
        "users": {
            "name": name,
            "user": {
                "client-certificate-data": b64(creds.client_cert_pem),
                "client-key-data": b64(creds.client_key_pem),
            },
        },
    }
    # kubectl's own field order (clientcmd/api/v1 Config), for a file that looks familiar.
    out: dict[str, Any] = {"apiVersion": config.get("apiVersion") or "v1"}
    for key in ("clusters", "contexts", "current-context", "kind", "preferences", "users"):
        if key in entries:
            existing = config.get(key)
            items = list(existing) if isinstance(existing, list) else []
            index = next((i for i, e in enumerate(items) if _named(e, name)), None)
            if index is None:
                items.append(entries[key])
            else:
                items[index] = entries[key]
            out[key] = items
        elif key == "current-context":
            out[key] = name
        elif key == "kind":
            out[key] = config.get("kind") or "Config"
        else:
            out[key] = config.get("preferences", {})
    for key, value in config.items():  # extensions and whatever else the file holds
        out.setdefault(key, value)
    return out


def _real(path: Path) -> Path:
    """Where the data goes: the target of a symlink (kubectl writes through links), else
    the path itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _read_config(given: Path, target: Path) -> tuple[dict[str, Any], str]:
    import yaml

    from meshtutor.inputfiles import read_text
    from meshtutor.model.yamlnodes import load_single, yaml_problem

    source = str(given)
    try:
        text = read_text(target)
    except InputFileError as exc:
        raise InputFileError(f"cannot read the kubeconfig: {exc.reason}", source=source) from None
    try:
        data = load_single(text)
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise InputFileError(
            f"{problem}; fix the kubeconfig or pass --kubeconfig another file",
            source=source,
            line=line,
        ) from None
    if data is None:
        return {}, text
    if not isinstance(data, dict):
        raise InputFileError(
            f"this is not a kubeconfig (a YAML mapping with clusters, users and contexts) but "
            f"a {type(data).__name__}; pass --kubeconfig another file",
            source=source,
        )
    for key in ("clusters", "users", "contexts"):
        value = data.get(key)
        if value is not None and not isinstance(value, list):
            from meshtutor.model.yamlnodes import line_of_key

            raise InputFileError(
                f"field {key}: expected a list of named entries, found a {type(value).__name__}",
                source=source,
                line=line_of_key(data, key, None),
            )
    return _plain(data), text


def _plain(value: Any) -> Any:
    """Plain dicts and lists (the YAML reader's line-tracking subclasses do not dump)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _has_comments(text: str) -> bool:
    return any(line.lstrip().startswith("#") for line in text.splitlines())


def _write_config(given: Path, target: Path, config: dict[str, Any]) -> None:
    import yaml

    text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False, allow_unicode=True)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_atomic(target, text.encode("utf-8"), 0o600)
    except OSError as exc:
        raise InputFileError(
            f"cannot write the kubeconfig: {exc.strerror or exc}; pass --kubeconfig a file "
            "you can write",
            source=str(given),
        ) from None


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """``data`` to a temporary file beside ``path``, renamed over it: readers see the old
    file or the new one, never a half."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """client-go's kubeconfig lock: ``PATH.lock`` created exclusively, removed afterwards."""
    lock = Path(f"{path}.lock")
    with contextlib.suppress(OSError):
        lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            if time.monotonic() >= deadline:
                raise InputFileError(
                    f"another program is changing the kubeconfig ({lock} exists); if no "
                    f"kubectl is running, delete {lock}",
                    source=str(path),
                ) from None
            time.sleep(0.05)
        except OSError as exc:
            raise InputFileError(
                f"cannot write the kubeconfig: {exc.strerror or exc}; pass --kubeconfig a file "
                "you can write",
                source=str(path),
            ) from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
