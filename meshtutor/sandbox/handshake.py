"""TLS handshakes shown message by message: a ClientHello sniffer, a recorder, key logs.

Three tools for the sandbox's sidecars (DESIGN §5):

* :func:`looks_like_tls` and :func:`parse_client_hello` read the first bytes of a connection,
  as Envoy's ``tls_inspector`` does, so that an inbound sidecar can decide between plaintext,
  plain TLS and Istio mutual TLS (an ALPN protocol starting with ``istio``) before it
  terminates anything. They never raise on garbage: a port scanner is not an error.
* :class:`HandshakeRecorder` hooks an :class:`ssl.SSLContext` and turns what OpenSSL reports
  into a :class:`HandshakeTrace`: every handshake message in wire order, who sent it, a short
  human description, the negotiated version, cipher, SNI and ALPN, and the certificates each
  side presented.
* :func:`enable_keylog` writes the session secrets in the NSS key log format, which is what
  Wireshark reads (Preferences → Protocols → TLS → "(Pre)-Master-Secret log filename"), so a
  learner can decrypt a capture of the sandbox's loopback traffic.

The recorder relies on ``SSLContext._msg_callback``, a private CPython hook (it exists since
3.8 and is what ``test_ssl`` uses). Every use of it is in this module, behind a test, so that
a change in a future Python breaks one file. What Python 3.11 actually passes, checked with
OpenSSL 3.0:

* ``conn`` is the *owner* object: the :class:`ssl.SSLObject` for asyncio (its TLS runs over
  memory BIOs) and for ``wrap_bio``; the :class:`ssl.SSLSocket` for ``wrap_socket``. It is
  ``None`` if the owner has already been collected.
* Handshake messages arrive whole (4-byte header included), decrypted, one call each, even
  when a record carries several. Alerts arrive decrypted as 2 bytes (level, description).
* Every record also produces a ``HEADER`` call (the 5-byte record header) and, in TLS 1.3, an
  ``INNER_CONTENT_TYPE`` call; application data itself never reaches the callback.
* TLS 1.3's middlebox-compatibility ChangeCipherSpec is reported as content to its *sender*
  only; the receiver sees just its record header. ChangeCipherSpec is therefore recorded from
  record headers, so both ends' traces show it in the same place.

Caveat worth telling a learner: when an asyncio server rejects a handshake (for instance a
client without a certificate), Python 3.11's ``asyncio.sslproto`` closes the transport without
flushing the alert OpenSSL wrote. The server's trace shows the alert it *generated*; the client
sees a bare EOF on its first read instead of ``certificate_required``. A peer using blocking
sockets, or Envoy, does deliver the alert.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import stat
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ClientHello",
    "HandshakeMessage",
    "HandshakeRecorder",
    "HandshakeTrace",
    "SSLConnection",
    "Side",
    "enable_keylog",
    "looks_like_tls",
    "parse_client_hello",
    "tls_record_length",
]

_log = logging.getLogger(__name__)

Side = Literal["client", "server"]
SSLConnection = ssl.SSLObject | ssl.SSLSocket

# The private hook; the name is kept in one constant so that a grep finds every use.
_MSG_CALLBACK = "_msg_callback"

# --- TLS registries (IANA), limited to what a learner meets -----------------------------------

_CT_CHANGE_CIPHER_SPEC = 20
_CT_ALERT = 21
_CT_HANDSHAKE = 22
_CT_HEADER = 256  # CPython/OpenSSL pseudo content type: the 5-byte record header

_HS_CLIENT_HELLO = 1
_HS_SERVER_HELLO = 2
_HS_NEW_SESSION_TICKET = 4
_HS_ENCRYPTED_EXTENSIONS = 8
_HS_CERTIFICATE = 11
_HS_SERVER_KEY_EXCHANGE = 12
_HS_CERTIFICATE_REQUEST = 13
_HS_CERTIFICATE_VERIFY = 15
_HS_FINISHED = 20
_HS_KEY_UPDATE = 24
_HS_COMPRESSED_CERTIFICATE = 25

_HANDSHAKE_NAMES: dict[int, str] = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    3: "HelloVerifyRequest",
    4: "NewSessionTicket",
    5: "EndOfEarlyData",
    8: "EncryptedExtensions",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
    22: "CertificateStatus",
    24: "KeyUpdate",
    25: "CompressedCertificate",
    254: "MessageHash",
}

_VERSION_NAMES: dict[int, str] = {
    0x0300: "SSLv3",
    0x0301: "TLSv1",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}

_CIPHER_SUITES: dict[int, str] = {
    # TLS 1.3
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    # TLS 1.2 and older, the ones OpenSSL, BoringSSL (Envoy) and curl still offer
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    # signalling values, not real suites
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x5600: "TLS_FALLBACK_SCSV",
}

_GROUPS: dict[int, str] = {
    0x0017: "secp256r1",
    0x0018: "secp384r1",
    0x0019: "secp521r1",
    0x001D: "x25519",
    0x001E: "x448",
    0x0100: "ffdhe2048",
    0x0101: "ffdhe3072",
    0x0102: "ffdhe4096",
    0x0103: "ffdhe6144",
    0x0104: "ffdhe8192",
    0x0200: "MLKEM512",
    0x0201: "MLKEM768",
    0x0202: "MLKEM1024",
    0x11EB: "SecP256r1MLKEM768",
    0x11EC: "X25519MLKEM768",
    0x11ED: "SecP384r1MLKEM1024",
    0x6399: "X25519Kyber768Draft00",
}

_SIGNATURE_SCHEMES: dict[int, str] = {
    0x0201: "rsa_pkcs1_sha1",
    0x0203: "ecdsa_sha1",
    0x0401: "rsa_pkcs1_sha256",
    0x0501: "rsa_pkcs1_sha384",
    0x0601: "rsa_pkcs1_sha512",
    0x0403: "ecdsa_secp256r1_sha256",
    0x0503: "ecdsa_secp384r1_sha384",
    0x0603: "ecdsa_secp521r1_sha512",
    0x0804: "rsa_pss_rsae_sha256",
    0x0805: "rsa_pss_rsae_sha384",
    0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519",
    0x0808: "ed448",
    0x0809: "rsa_pss_pss_sha256",
    0x080A: "rsa_pss_pss_sha384",
    0x080B: "rsa_pss_pss_sha512",
}

_ALERTS: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}

# What the alerts a learner will actually provoke mean, in a few words.
_ALERT_HINTS: dict[str, str] = {
    "close_notify": "orderly close",
    "certificate_required": "a client certificate is required",
    "unknown_ca": "certificate not issued by a trusted CA",
    "bad_certificate": "certificate rejected",
    "certificate_expired": "certificate expired or not yet valid",
    "certificate_unknown": "certificate could not be verified",
    "handshake_failure": "no acceptable parameters",
    "no_application_protocol": "no common ALPN protocol",
    "protocol_version": "no common TLS version",
    "decrypt_error": "signature or Finished check failed",
}

# Alerts that end a connection normally rather than signal a failure (RFC 8446 §6.1).
_BENIGN_ALERTS = frozenset({"close_notify", "user_canceled"})

# RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest.
_HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

_EXT_SERVER_NAME = 0
_EXT_SUPPORTED_GROUPS = 10
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43
_EXT_KEY_SHARE = 51

# A TLS record holds at most 2^14 bytes of plaintext; TLSCiphertext may add 256 (RFC 8446 §5.2).
_MAX_RECORD = 2**14 + 256
# A ClientHello never needs more than a few records; the cap keeps a hostile peer from making
# the sniffer buffer megabytes.
_MAX_CLIENT_HELLO = 4 * 2**14


def _is_grease(code: int) -> bool:
    """RFC 8701 GREASE values (0x0A0A, 0x1A1A, …) are noise clients send on purpose."""
    return (code & 0x0F0F) == 0x0A0A and (code >> 8) == (code & 0xFF)


def _name(table: dict[int, str], code: int) -> str:
    if _is_grease(code):
        return "GREASE"
    return table.get(code, f"0x{code:04x}")


def _human_version(version: str) -> str:
    """``TLSv1.3`` → ``TLS 1.3`` for prose; ``TLSv1`` → ``TLS 1.0``."""
    if version.startswith("TLSv"):
        number = version[4:]
        return f"TLS {number if '.' in number else number + '.0'}"
    return version


def _decode(raw: bytes) -> str:
    # SNI and ALPN should be ASCII, but they come from the network: never raise on them.
    return raw.decode("ascii", errors="backslashreplace")


# --- a bounds-checked reader -------------------------------------------------------------------


class _Truncated(Exception):
    """Internal: the bytes end before the structure does (or the structure is inconsistent)."""


class _Reader:
    """Reads TLS presentation-language fields, raising :class:`_Truncated` at the end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Truncated
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.uint(length_size))


def _extensions(reader: _Reader) -> dict[int, bytes]:
    """Parse an ``extensions<0..2^16-1>`` block; the first occurrence of a type wins."""
    if reader.remaining() == 0:
        return {}  # before TLS 1.3 the whole block may be absent
    block = _Reader(reader.vector(2))
    found: dict[int, bytes] = {}
    while block.remaining():
        kind = block.uint(2)
        body = block.vector(2)
        found.setdefault(kind, body)
    return found


def _alpn_list(body: bytes) -> tuple[str, ...]:
    names = _Reader(_Reader(body).vector(2))
    out: list[str] = []
    while names.remaining():
        out.append(_decode(names.vector(1)))
    return tuple(out)


# --- ClientHello -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientHello:
    """What a ClientHello offers, as Envoy's ``tls_inspector`` sees it.

    Versions use the names :meth:`ssl.SSLObject.version` returns (``TLSv1.3``); cipher suites
    and groups use IANA names, ``GREASE`` for RFC 8701 noise and ``0x....`` when unknown.
    """

    legacy_version: str
    supported_versions: tuple[str, ...]
    cipher_suites: tuple[str, ...]
    sni: str | None
    alpn: tuple[str, ...]
    key_share_groups: tuple[str, ...]
    supported_groups: tuple[str, ...] = ()

    @property
    def max_version(self) -> str:
        """The highest version offered (supported_versions wins over the legacy field)."""
        known = [v for v in self.supported_versions if v in _VERSION_ORDER]
        if known:
            return max(known, key=_VERSION_ORDER.__getitem__)
        return self.legacy_version

    @property
    def offers_key_share(self) -> bool:
        """True when the client sent key shares (TLS 1.3 key exchange in the first flight)."""
        return bool(self.key_share_groups)

    @property
    def istio_alpn(self) -> bool:
        """True when the client offers an Istio ALPN protocol (``istio``, ``istio-http/1.1``…).

        Istio's inbound listener picks its mTLS filter chain on exactly this; a plain TLS
        client (an app doing its own TLS) offers ``h2``/``http/1.1`` or nothing.
        """
        return any(protocol.startswith("istio") for protocol in self.alpn)

    def summary(self) -> str:
        """Short prose: ``TLS 1.3, SNI example.org, ALPN istio-http/1.1, istio``."""
        parts = [_human_version(self.max_version)]
        if self.sni is not None:
            parts.append(f"SNI {self.sni}")
        if self.alpn:
            parts.append("ALPN " + ", ".join(self.alpn))
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "legacy_version": self.legacy_version,
            "supported_versions": list(self.supported_versions),
            "cipher_suites": list(self.cipher_suites),
            "sni": self.sni,
            "alpn": list(self.alpn),
            "key_share_groups": list(self.key_share_groups),
            "supported_groups": list(self.supported_groups),
        }


_VERSION_ORDER = {name: code for code, name in _VERSION_NAMES.items()}


def looks_like_tls(first_bytes: bytes) -> bool:
    """True when the bytes start like a TLS handshake record (``16 03 0x``).

    Three bytes are enough; with fewer the answer is False (ask again with more). Plaintext
    HTTP starts with a method name, so it never matches.
    """
    return (
        len(first_bytes) >= 3
        and first_bytes[0] == _CT_HANDSHAKE
        and first_bytes[1] == 0x03
        and first_bytes[2] < 0x10
    )


def tls_record_length(first_bytes: bytes) -> int | None:
    """Total size (header included) of the TLS record these bytes start, or None.

    Lets a sniffer know how many bytes to peek before calling :func:`parse_client_hello`.
    None when fewer than 5 bytes are given or they do not look like a TLS handshake record.
    """
    if len(first_bytes) < 5 or not looks_like_tls(first_bytes):
        return None
    length = int.from_bytes(first_bytes[3:5], "big")
    if length == 0 or length > _MAX_RECORD:
        return None
    return 5 + length


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of a TLS byte stream; None if incomplete or not one.

    ``data`` starts with a record header. The first record is usually enough; a ClientHello
    fragmented over several records (large post-quantum key shares can do that) is reassembled
    when the following records are given too. Never raises on garbage.
    """
    message = _first_handshake_message(data)
    if message is None or message[0] != _HS_CLIENT_HELLO:
        return None
    try:
        return _parse_client_hello_body(message[4:])
    except _Truncated:
        return None


def _first_handshake_message(data: bytes) -> bytes | None:
    """Reassemble the first handshake message from handshake records, or None if short."""
    fragments = bytearray()
    pos = 0
    needed: int | None = None  # size of the whole message (header included) once known
    while needed is None or len(fragments) < needed:
        header = data[pos : pos + 5]
        if len(header) < 5 or not looks_like_tls(header):
            return None
        length = int.from_bytes(header[3:5], "big")
        if length > _MAX_RECORD:
            return None
        fragment = data[pos + 5 : pos + 5 + length]
        if len(fragment) < length:
            return None
        fragments += fragment
        pos += 5 + length
        if needed is None and len(fragments) >= 4:
            needed = 4 + int.from_bytes(fragments[1:4], "big")
            if needed > _MAX_CLIENT_HELLO:
                return None
        if length == 0 and needed is None:
            return None  # empty handshake records are illegal (RFC 8446 §5.1)
    return bytes(fragments[:needed])


def _parse_client_hello_body(body: bytes) -> ClientHello:
    reader = _Reader(body)
    legacy = reader.uint(2)
    reader.take(32)  # random
    reader.vector(1)  # legacy_session_id
    suites_raw = reader.vector(2)
    if len(suites_raw) % 2:
        raise _Truncated
    reader.vector(1)  # legacy_compression_methods
    extensions = _extensions(reader)

    suites = tuple(
        _name(_CIPHER_SUITES, int.from_bytes(suites_raw[i : i + 2], "big"))
        for i in range(0, len(suites_raw), 2)
    )

    versions: tuple[str, ...] = ()
    if _EXT_SUPPORTED_VERSIONS in extensions:
        raw = _Reader(extensions[_EXT_SUPPORTED_VERSIONS]).vector(1)
        if len(raw) % 2:
            raise _Truncated
        versions = tuple(
            _name(_VERSION_NAMES, int.from_bytes(raw[i : i + 2], "big"))
            for i in range(0, len(raw), 2)
        )

    sni: str | None = None
    if extensions.get(_EXT_SERVER_NAME):
        names = _Reader(_Reader(extensions[_EXT_SERVER_NAME]).vector(2))
        while names.remaining():
            kind = names.uint(1)
            value = names.vector(2)
            if kind == 0 and sni is None:  # host_name is the only type ever defined
                sni = _decode(value)

    alpn = _alpn_list(extensions[_EXT_ALPN]) if _EXT_ALPN in extensions else ()

    shares: list[str] = []
    if _EXT_KEY_SHARE in extensions:
        entries = _Reader(_Reader(extensions[_EXT_KEY_SHARE]).vector(2))
        while entries.remaining():
            group = entries.uint(2)
            entries.vector(2)  # the public key itself
            shares.append(_name(_GROUPS, group))

    groups: tuple[str, ...] = ()
    if _EXT_SUPPORTED_GROUPS in extensions:
        raw = _Reader(extensions[_EXT_SUPPORTED_GROUPS]).vector(2)
        if len(raw) % 2:
            raise _Truncated
        groups = tuple(
            _name(_GROUPS, int.from_bytes(raw[i : i + 2], "big")) for i in range(0, len(raw), 2)
        )

    return ClientHello(
        legacy_version=_name(_VERSION_NAMES, legacy),
        supported_versions=versions,
        cipher_suites=suites,
        sni=sni,
        alpn=alpn,
        key_share_groups=tuple(shares),
        supported_groups=groups,
    )


# --- traces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandshakeMessage:
    """One handshake message (or alert, or ChangeCipherSpec) as it crossed the wire.

    ``sender`` is who sent it, whichever end recorded it. ``length`` follows Wireshark: the
    handshake body without its 4-byte header; 2 for an alert, 1 for ChangeCipherSpec.
    ``mtls_specific`` marks what only mutual TLS adds: the CertificateRequest and the client's
    Certificate and CertificateVerify.
    """

    sender: Side
    name: str
    length: int
    detail: str
    mtls_specific: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "sender": self.sender,
            "name": self.name,
            "length": self.length,
            "detail": self.detail,
            "mtls_specific": self.mtls_specific,
        }


@dataclass(frozen=True)
class HandshakeTrace:
    """A connection's handshake as one end saw it.

    ``version``, ``cipher``, ``sni`` and ``alpn`` come from the messages themselves (so a
    failed handshake still shows them) and are completed from the SSL object when the trace
    is fetched. ``client_certificates`` and ``server_certificates`` are DER certificates in the
    order of the Certificate messages (leaf first). ``error`` names the first alert other than
    ``close_notify``/``user_canceled`` either end sent.
    """

    side: Side
    messages: tuple[HandshakeMessage, ...] = ()
    version: str | None = None
    cipher: str | None = None
    sni: str | None = None
    alpn: str | None = None
    client_certificates: tuple[bytes, ...] = ()
    server_certificates: tuple[bytes, ...] = ()
    error: str | None = None
    client_hello: ClientHello | None = None

    @property
    def mutual(self) -> bool:
        """True when the client sent a non-empty Certificate: mutual TLS."""
        return bool(self.client_certificates)

    @property
    def completed(self) -> bool:
        """True when both ends sent Finished and no error alert was seen."""
        finished = {m.sender for m in self.messages if m.name == "Finished"}
        return self.error is None and finished == {"client", "server"}

    def names(self) -> list[tuple[Side, str]]:
        """``(sender, name)`` for every message, handy for assertions and compact views."""
        return [(m.sender, m.name) for m in self.messages]

    def summary_lines(self) -> list[str]:
        """A plain-text sequence diagram: one line per message, then the outcome.

        For example::

            client → server  ClientHello          TLS 1.3, SNI …, ALPN istio-http/1.1, istio
            client ← server  ServerHello          TLS 1.3, TLS_AES_256_GCM_SHA384, key share x25519
            …
            result: TLSv1.3, TLS_AES_256_GCM_SHA384, ALPN istio, mutual TLS

        Messages only mutual TLS adds end with ``[mTLS]``.
        """
        width = max((len(m.name) for m in self.messages), default=0)
        lines = []
        for message in self.messages:
            arrow = "client → server" if message.sender == "client" else "client ← server"
            line = f"{arrow}  {message.name:<{width}}  {message.detail}"
            if message.mtls_specific:
                line += "  [mTLS]"
            lines.append(line.rstrip())
        lines.append("result: " + self._outcome())
        return lines

    def _outcome(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        if not self.completed:
            return "handshake not finished"
        parts = [p for p in (self.version, self.cipher) if p]
        parts.append(f"ALPN {self.alpn}" if self.alpn else "no ALPN")
        parts.append("mutual TLS" if self.mutual else "server-only TLS (no client certificate)")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict.

        Each certificate is ``{"pem": ..., "sha256": ...}``. PEM is the primary form: it is
        self-contained and readable by ``openssl x509`` and by ``meshtutor.pki`` for the
        SAN/SPIFFE view; the hex SHA-256 of the DER is added for quick comparison between the
        two ends' traces.
        """
        return {
            "side": self.side,
            "messages": [m.to_dict() for m in self.messages],
            "version": self.version,
            "cipher": self.cipher,
            "sni": self.sni,
            "alpn": self.alpn,
            "mutual": self.mutual,
            "completed": self.completed,
            "error": self.error,
            "client_certificates": [_cert_dict(der) for der in self.client_certificates],
            "server_certificates": [_cert_dict(der) for der in self.server_certificates],
            "client_hello": None if self.client_hello is None else self.client_hello.to_dict(),
        }


def _cert_dict(der: bytes) -> dict[str, str]:
    return {"pem": ssl.DER_cert_to_PEM_cert(der), "sha256": hashlib.sha256(der).hexdigest()}


# --- message decoding --------------------------------------------------------------------------


def _parse_certificate_list(body: bytes, tls13: bool | None) -> tuple[bytes, ...] | None:
    """DER certificates of a Certificate message body; None if it does not parse.

    TLS 1.3 (RFC 8446 §4.4.2) prefixes a request context and follows each certificate with
    extensions; TLS 1.2 (RFC 5246 §7.4.2) is a bare list. With the version unknown both
    layouts are tried, 1.3 first.
    """
    layouts = [True, False] if tls13 is None else [tls13]
    for layout in layouts:
        try:
            reader = _Reader(body)
            if layout:
                reader.vector(1)  # certificate_request_context
            entries = _Reader(reader.vector(3))
            if reader.remaining():
                raise _Truncated
            certs: list[bytes] = []
            while entries.remaining():
                certs.append(entries.vector(3))
                if layout:
                    entries.vector(2)  # per-certificate extensions (OCSP, SCT)
            return tuple(certs)
        except _Truncated:
            continue
    return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Connection:
    """Mutable per-connection state behind a trace (guarded by the recorder's lock)."""

    __slots__ = (
        "alpn",
        "cipher",
        "client_certificates",
        "client_hello",
        "error",
        "key",
        "messages",
        "ref",
        "serial",
        "server_certificates",
        "side",
        "version_code",
    )

    def __init__(self, side: Side, key: int, serial: int, ref: weakref.ref[Any] | None) -> None:
        self.side: Side = side
        self.key = key
        self.serial = serial
        self.ref = ref
        self.messages: list[HandshakeMessage] = []
        self.client_hello: ClientHello | None = None
        self.version_code: int | None = None
        self.cipher: str | None = None
        self.alpn: str | None = None
        self.client_certificates: tuple[bytes, ...] = ()
        self.server_certificates: tuple[bytes, ...] = ()
        self.error: str | None = None

    def add_handshake(self, sender: Side, data: bytes) -> None:
        kind = data[0]
        name = _HANDSHAKE_NAMES.get(kind, f"HandshakeType({kind})")
        body = data[4:]
        try:
            name, detail = self._describe(sender, kind, name, body)
        except _Truncated:
            detail = ""  # OpenSSL accepted it, so this is a gap in our parser, not an attack
        mtls = name == "CertificateRequest" or (
            sender == "client"
            and name in ("Certificate", "CertificateVerify", "CompressedCertificate")
        )
        self.messages.append(HandshakeMessage(sender, name, len(body), detail, mtls))

    def _describe(self, sender: Side, kind: int, name: str, body: bytes) -> tuple[str, str]:
        """Update the connection state from one message; return its (name, detail)."""
        if kind == _HS_CLIENT_HELLO:
            hello = _parse_client_hello_body(body)
            self.client_hello = hello
            return name, hello.summary()
        if kind == _HS_SERVER_HELLO:
            return self._server_hello(body)
        if kind == _HS_ENCRYPTED_EXTENSIONS:
            extensions = _extensions(_Reader(body))
            if _EXT_ALPN in extensions:
                protocols = _alpn_list(extensions[_EXT_ALPN])
                self.alpn = protocols[0] if protocols else None
            return name, f"ALPN {self.alpn}" if self.alpn else "no ALPN"
        if kind == _HS_CERTIFICATE_REQUEST:
            return name, "server asks for a client certificate"
        if kind == _HS_CERTIFICATE:
            tls13 = None if self.version_code is None else self.version_code >= 0x0304
            certs = _parse_certificate_list(body, tls13)
            if certs is None:
                return name, "unparsed certificate list"
            if sender == "client":
                self.client_certificates = certs
            else:
                self.server_certificates = certs
            if not certs:
                return name, "no certificate (empty)"
            return name, _plural(len(certs), "certificate")
        if kind == _HS_COMPRESSED_CERTIFICATE:
            return name, "compressed certificate chain"
        if kind == _HS_CERTIFICATE_VERIFY:
            reader = _Reader(body)
            scheme = _name(_SIGNATURE_SCHEMES, reader.uint(2))
            return name, f"signature {scheme} proves the private key"
        if kind == _HS_FINISHED:
            return name, f"MAC over the whole handshake ({len(body)} bytes)"
        if kind == _HS_NEW_SESSION_TICKET:
            if self.version_code is not None and self.version_code >= 0x0304:
                lifetime = _Reader(body).uint(4)
                return name, f"resumption ticket, lifetime {lifetime} s"
            return name, "resumption ticket"
        if kind == _HS_KEY_UPDATE:
            if _Reader(body).uint(1) == 1:  # update_requested
                return name, "new traffic keys, peer asked to update too"
            return name, "new traffic keys"
        if kind == _HS_SERVER_KEY_EXCHANGE:
            reader = _Reader(body)
            if reader.uint(1) == 3:  # named_curve
                return name, f"ephemeral key on {_name(_GROUPS, reader.uint(2))}"
            return name, "ephemeral key"
        return name, ""

    def _server_hello(self, body: bytes) -> tuple[str, str]:
        reader = _Reader(body)
        legacy = reader.uint(2)
        random = reader.take(32)
        reader.vector(1)  # legacy_session_id_echo
        suite = _name(_CIPHER_SUITES, reader.uint(2))
        reader.uint(1)  # legacy_compression_method
        extensions = _extensions(reader)
        version = legacy
        if _EXT_SUPPORTED_VERSIONS in extensions:
            version = _Reader(extensions[_EXT_SUPPORTED_VERSIONS]).uint(2)
        group: str | None = None
        if _EXT_KEY_SHARE in extensions:
            # ServerHello: group + key; HelloRetryRequest: the group alone.
            group = _name(_GROUPS, _Reader(extensions[_EXT_KEY_SHARE]).uint(2))
        if random == _HRR_RANDOM:
            wanted = f" ({group})" if group else ""
            return "HelloRetryRequest", f"server asks for another key share{wanted}"
        self.version_code = version
        self.cipher = suite
        if _EXT_ALPN in extensions:  # TLS 1.2 negotiates ALPN in the ServerHello
            protocols = _alpn_list(extensions[_EXT_ALPN])
            self.alpn = protocols[0] if protocols else None
        parts = [_human_version(_name(_VERSION_NAMES, version)), suite]
        if group is not None:
            parts.append(f"key share {group}")
        return "ServerHello", ", ".join(parts)

    def add_alert(self, sender: Side, data: bytes) -> str | None:
        """Record an alert; return the error text if this alert is the first failure."""
        if len(data) < 2:
            return None
        level = {1: "warning", 2: "fatal"}.get(data[0], f"level {data[0]}")
        description = _ALERTS.get(data[1], f"alert {data[1]}")
        hint = _ALERT_HINTS.get(description)
        detail = f"{level}: {hint}" if hint else level
        self.messages.append(HandshakeMessage(sender, f"Alert: {description}", 2, detail))
        if description in _BENIGN_ALERTS or self.error is not None:
            return None
        self.error = f"{sender} sent alert {description}"
        return self.error

    def add_change_cipher_spec(self, sender: Side) -> None:
        tls13 = self.version_code is not None and self.version_code >= 0x0304
        detail = "middlebox compatibility only, ignored in TLS 1.3" if tls13 else "switch keys"
        self.messages.append(HandshakeMessage(sender, "ChangeCipherSpec", 1, detail))

    def snapshot(self, conn: SSLConnection | None) -> HandshakeTrace:
        version = None if self.version_code is None else _name(_VERSION_NAMES, self.version_code)
        cipher = self.cipher
        alpn = self.alpn
        sni = None if self.client_hello is None else self.client_hello.sni
        if conn is not None:
            # The messages already say all this; the SSL object fills gaps, e.g. a TLS 1.2
            # cipher when the ServerHello could not be parsed, or ALPN on resumption.
            version = version or conn.version()
            if cipher is None:
                negotiated = conn.cipher()
                cipher = None if negotiated is None else negotiated[0]
            alpn = alpn or conn.selected_alpn_protocol()
            sni = sni or conn.server_hostname
        return HandshakeTrace(
            side=self.side,
            messages=tuple(self.messages),
            version=version,
            cipher=cipher,
            sni=sni,
            alpn=alpn,
            client_certificates=self.client_certificates,
            server_certificates=self.server_certificates,
            error=self.error,
            client_hello=self.client_hello,
        )


# --- the recorder ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Hook:
    """The callable installed as ``_msg_callback``; chains whatever was there before."""

    recorder: HandshakeRecorder
    side: Side
    previous: Callable[..., object] | None
    enabled: bool = field(default=True)

    def __call__(
        self,
        conn: Any,
        direction: str,
        version: Any,
        content_type: Any,
        msg_type: Any,
        data: bytes,
    ) -> None:
        if self.enabled:
            try:
                self.recorder._record(self.side, conn, direction, content_type, msg_type, data)
            except Exception:
                # An exception here would be re-raised by CPython from the SSL call and kill
                # a connection that is fine: recording must never change what TLS does.
                _log.exception("handshake recorder failed on a %s message", direction)
        if self.previous is not None:
            self.previous(conn, direction, version, content_type, msg_type, data)


class HandshakeRecorder:
    """Records TLS handshakes of every connection made from the contexts it is attached to.

    Traces are kept per connection, keyed by ``id()`` of the SSL object and guarded by a weak
    reference, so the recorder never keeps a connection alive and a reused ``id`` never mixes
    two connections. At most ``capacity`` connections are kept (oldest dropped first), so an
    attached context costs a bounded amount of memory even if nobody ever asks for a trace.
    Time: OpenSSL calls back twice per record, application data included, and CPython's own
    wrapper converts every argument to an enum; that, not the recorder (which returns at once
    for application data), costs about 15 µs per 16 KiB record and end, the same as a no-op
    callback. Irrelevant for probes; :meth:`detach` contexts that move bulk data unobserved.

    A trace survives its SSL object until it is evicted, so :meth:`traces` still shows
    handshakes whose SSL object the caller never saw (asyncio does not expose the SSLObject of
    a failed server-side handshake). ``on_error`` is called with the trace when a connection
    sends or receives its first failure alert; it runs inside OpenSSL's callback, so it must
    be quick, and its exceptions are logged, not raised.

    The lock makes recording safe from several threads; in asyncio everything runs on the
    loop's thread anyway.
    """

    def __init__(
        self,
        capacity: int = 256,
        *,
        on_error: Callable[[HandshakeTrace], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._on_error = on_error
        self._lock = threading.Lock()
        self._serial = 0
        # serial → connection, in order of first message; by_id maps live objects to serials.
        self._connections: OrderedDict[int, _Connection] = OrderedDict()
        self._by_id: dict[int, int] = {}
        # Connections handed back by pop()/finish(): their later messages (session tickets,
        # close_notify) would otherwise start a new, meaningless trace.
        self._released: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- installation --

    def attach(self, ctx: ssl.SSLContext, *, side: Side) -> None:
        """Record every connection of ``ctx``, whose connections play ``side``.

        An existing message callback keeps being called after ours. Attaching the same
        recorder twice replaces the first hook instead of recording twice.
        """
        if side not in ("client", "server"):
            raise ValueError(f"side must be 'client' or 'server', not {side!r}")
        previous = getattr(ctx, _MSG_CALLBACK)
        if isinstance(previous, _Hook) and previous.recorder is self:
            previous = previous.previous
        setattr(ctx, _MSG_CALLBACK, _Hook(self, side, previous))

    def detach(self, ctx: ssl.SSLContext) -> None:
        """Stop recording ``ctx``; the callback that was there before is restored."""
        current = getattr(ctx, _MSG_CALLBACK)
        if isinstance(current, _Hook) and current.recorder is self:
            setattr(ctx, _MSG_CALLBACK, current.previous)
            return
        # Someone chained their own callback on top of ours: unhooking would drop theirs, so
        # our hook stays in the chain but stops recording.
        hook = current
        while isinstance(hook, _Hook):
            if hook.recorder is self:
                hook.enabled = False
            hook = hook.previous

    # -- reading traces --

    def trace_for(self, conn: SSLConnection) -> HandshakeTrace:
        """The trace of ``conn`` so far; raises KeyError if nothing was recorded for it.

        Version, cipher, ALPN and SNI are completed from ``conn`` when the messages did not
        carry them.
        """
        with self._lock:
            state = self._lookup(conn)
            if state is None:
                raise KeyError(f"no handshake recorded for {conn!r}")
            return state.snapshot(conn)

    def pop(self, conn: SSLConnection) -> HandshakeTrace:
        """Like :meth:`trace_for`, and forget the connection.

        Messages the connection exchanges afterwards (session tickets, KeyUpdate, alerts)
        are no longer recorded.
        """
        with self._lock:
            state = self._lookup(conn)
            if state is None:
                raise KeyError(f"no handshake recorded for {conn!r}")
            self._forget(state)
            self._released.add(conn)
            return state.snapshot(conn)

    def finish(self, conn: SSLConnection) -> HandshakeTrace:
        """The finished trace of a connection whose handshake is over; forgets it (= pop)."""
        return self.pop(conn)

    def traces(self, *, side: Side | None = None) -> list[HandshakeTrace]:
        """Every retained trace, oldest first, optionally for one side only."""
        with self._lock:
            states = list(self._connections.values())
            return [s.snapshot(None) for s in states if side is None or s.side == side]

    def clear(self) -> None:
        """Forget every trace."""
        with self._lock:
            self._connections.clear()
            self._by_id.clear()

    def __len__(self) -> int:
        return len(self._connections)

    # -- recording (called from the hook) --

    def _record(
        self,
        side: Side,
        conn: Any,
        direction: str,
        content_type: Any,
        msg_type: Any,
        data: bytes,
    ) -> None:
        if content_type == _CT_HEADER:
            # Record headers are only used for ChangeCipherSpec; see the module docstring.
            if msg_type != _CT_CHANGE_CIPHER_SPEC:
                return
        elif content_type not in (_CT_HANDSHAKE, _CT_ALERT) or not data:
            return  # inner content types, application data, CCS content (counted via header)
        if conn is None or conn in self._released:
            return  # owner already collected (nowhere to file it), or trace already handed back
        ours = direction == "write"
        sender: Side = side if ours else ("server" if side == "client" else "client")
        error: str | None = None
        with self._lock:
            state = self._state_for(side, conn)
            if state is None:
                return
            if content_type == _CT_HEADER:
                state.add_change_cipher_spec(sender)
            elif content_type == _CT_ALERT:
                error = state.add_alert(sender, data)
            else:
                state.add_handshake(sender, data)
            trace = state.snapshot(None) if error is not None and self._on_error else None
        if trace is not None and self._on_error is not None:
            try:
                self._on_error(trace)
            except Exception:
                _log.exception("handshake recorder on_error callback failed")

    def _lookup(self, conn: object) -> _Connection | None:
        serial = self._by_id.get(id(conn))
        if serial is None:
            return None
        state = self._connections.get(serial)
        if state is None or state.ref is None or state.ref() is not conn:
            return None
        return state

    def _state_for(self, side: Side, conn: object) -> _Connection | None:
        state = self._lookup(conn)
        if state is not None:
            return state
        key = id(conn)
        self._serial += 1
        serial = self._serial
        by_id = self._by_id

        def forget_id(_: object, key: int = key, serial: int = serial) -> None:
            # Runs when the SSL object dies (possibly inside a GC pass while our lock is
            # held, so it takes no lock): the id may now be reused by a new connection.
            if by_id.get(key) == serial:
                by_id.pop(key, None)

        try:
            ref: weakref.ref[Any] = weakref.ref(conn, forget_id)
        except TypeError:
            return None  # not weak-referenceable: cannot key it safely
        state = _Connection(side, key, serial, ref)
        self._connections[serial] = state
        self._by_id[key] = serial
        while len(self._connections) > self._capacity:
            _, oldest = self._connections.popitem(last=False)
            self._release(oldest)
        return state

    def _forget(self, state: _Connection) -> None:
        self._connections.pop(state.serial, None)
        self._release(state)

    def _release(self, state: _Connection) -> None:
        if self._by_id.get(state.key) == state.serial:
            del self._by_id[state.key]
        # Dropping the weakref also drops its callback: a forgotten entry never fires it.
        state.ref = None


# --- key log -----------------------------------------------------------------------------------


def enable_keylog(ctx: ssl.SSLContext, path: str | os.PathLike[str]) -> None:
    """Append the TLS secrets of ``ctx``'s connections to ``path`` for Wireshark.

    OpenSSL writes the NSS key log format (the ``SSLKEYLOGFILE`` format): lines such as
    ``CLIENT_HANDSHAKE_TRAFFIC_SECRET <client random> <secret>``, which Wireshark reads from
    Preferences → Protocols → TLS → "(Pre)-Master-Secret log filename".

    Anyone holding the file can decrypt the traffic, so it is created 0600; an existing file
    is appended to and its mode reset to 0600. A symlink is refused (``O_NOFOLLOW``) so the
    mode change cannot land on another file. Python opens the file itself, in append mode.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)  # the umask may only narrow 0600
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"key log {os.fspath(path)!r} is not a regular file")
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # an existing file keeps its old mode otherwise
        else:  # Windows before 3.13: only the read-only bit exists anyway
            os.chmod(path, 0o600)
    finally:
        os.close(fd)
    ctx.keylog_filename = os.fspath(path)
