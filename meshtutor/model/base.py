"""Base types shared by every modelled resource."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class ResourceRef:
    """Identifies one object: ``PeerAuthentication foo/default`` when printed."""

    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Origin:
    """Where a document came from, to point errors and explanations at the source."""

    source: str = "<input>"
    document: int = 1
    line: int = 1


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Resource:
    """A loaded, validated object. Subclasses add the typed fields of their kind."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    origin: Origin = field(default_factory=Origin, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.kind, self.metadata.namespace, self.metadata.name)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace
