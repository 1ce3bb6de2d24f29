"""``KubeBackend``: the Backend protocol on a real cluster (kind, k3d, minikube…) with Istio or
Linkerd installed, through the official ``kubernetes`` client (imported lazily: it is slow to
import and reads the kubeconfig).

- An object that does not exist is created with POST (someone else's object created since
  meshtutor looked is a 409, never taken over); meshtutor's own objects are updated with
  server-side apply under field manager ``meshtutor``, each write carrying the resourceVersion
  meshtutor read (a change by anyone else since is a 409). What meshtutor creates is labelled
  ``app.kubernetes.io/managed-by: meshtutor`` (and ``meshtutor.dev/lesson``), for the user's
  ``kubectl get -l``; what it adopts is not.
- meshtutor changes only what is its own: the object whose uid its journal recorded on this
  cluster (``is_meshtutors``; a label proves nothing). Any other existing object an apply would
  change (a manifest, a label, an annotation) stops the whole apply before anything changes,
  unless ``adopt``; a delete leaves it alone. A lesson is checked the same way as a whole
  before its first change (``check_ownership``), so a conflict at its third step leaves nothing
  of the first two behind.
- A journal (user data dir, one per context) of everything meshtutor created or adopted (with
  the adopted object's backup) and on which cluster (the kube-system namespace's uid), each
  entry written *before* the change, so that ``reset`` deletes exactly what it created and puts
  back what it adopted, even after a crash, and never acts on another cluster's entries.
- Every call has a deadline (``kubeclient``).
- Probes are ``curl`` run with ``exec`` in the source pod; the exit code comes from the exec
  status channel. The prediction is computed from the objects read back from the API.
- Outside probes run the local ``curl`` on this machine against the external Service's address
  (its load balancer address, else a node's address and the node port).
- Cluster components (an ingress gateway, ingress-nginx) are never installed: ``install`` only
  checks that they are there, and says how to install them.
- Contexts whose server is not on this machine are refused unless ``allow_remote``
  (``locality``: decided on the server's address, not the context's name).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from meshtutor.backends.base import ProbeResult, WorkloadStatus, gathered
from meshtutor.backends.curl import MARK, curl_args, parse_output
from meshtutor.backends.kubeclient import (
    _WEBSOCKET_TIMEOUT,
    REQUEST_TIMEOUT,
    KubeError,
    Target,
    _bound_exec_websockets,
    api_client,
    check_local,
    client_configuration,
    client_error_reason,
    client_errors,
    resolve_target,
    server_version,
    shut,
    socket_deadline,
)
from meshtutor.errors import ClusterStateError, MeshtutorError, ProbeSpecError
from meshtutor.model.base import ObjectMeta, Resource, ResourceRef
from meshtutor.model.k8s import Deployment
from meshtutor.model.loader import UnmodelledResource, load_yaml
from meshtutor.paths import data_dir
from meshtutor.policy.cluster import ApplyReport, Cluster, Mesh
from meshtutor.policy.probe import Probe

T = TypeVar("T")

MANAGED_BY = "app.kubernetes.io/managed-by"
LESSON_LABEL = "meshtutor.dev/lesson"
FIELD_MANAGER = "meshtutor"

# The kinds meshtutor reads back to predict probes, in the order they are applied.
READ_BACK = [
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),  # only the TLS Secrets the edge names, their key dropped (_tls_secrets)
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("policy.linkerd.io/v1beta3", "Server"),
    ("policy.linkerd.io/v1beta1", "ServerAuthorization"),
    ("policy.linkerd.io/v1beta3", "HTTPRoute"),
    ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy"),
    ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication"),
    ("policy.linkerd.io/v1alpha1", "NetworkAuthentication"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "VirtualService"),
]
#: Kinds read back from system namespaces too: the mesh's root namespace holds mesh-wide
#: policies, and the ingress gateway's Gateways and certificates live next to it.
FROM_EVERY_NAMESPACE = {
    "PeerAuthentication",
    "AuthorizationPolicy",
    "DestinationRule",
    "ConfigMap",
    "Secret",
    "Gateway",
    "VirtualService",
    "Ingress",
}
TLS_SECRET_TYPE = "kubernetes.io/tls"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
#: Objects meshtutor asks for in one list call (``limit``, then ``continue``), and the most it
#: reads of one kind in all: a local learning cluster holds a few hundred.
LIST_PAGE = 500
LIST_LIMIT = 10_000
LIST_PAGES = 100
KIND_INGRESS_NGINX = (
    "https://raw.githubusercontent.com/kubernetes/ingress-nginx/main/deploy/static/provider/"
    "kind/deploy.yaml"
)
SYSTEM_NAMESPACES = {
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
    "istio-system",
    "linkerd",
    "linkerd-viz",
    "cert-manager",
}


def context_file(context: str, prefix: str = "", suffix: str = ".json") -> Path:
    """A file of meshtutor's data dir for one kubeconfig context: the name made safe for a file
    name, and a hash of the name as written, since ``a@b``, ``a:b`` and ``a_b`` are three
    contexts that the safe name alone would make one."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", context)[:80]
    digest = hashlib.sha256(context.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return data_dir() / "kube" / f"{prefix}{safe}-{digest}{suffix}"


#: The annotation meshtutor puts on an object it creates, with the token its journal entry
#: recorded before the create: the proof that the object is the one meshtutor created when the
#: create's answer (and with it the uid) never reached meshtutor.
CREATED_ANNOTATION = "meshtutor.dev/created"


class Journal:
    """What meshtutor created or adopted through one context, so that ``reset`` removes exactly
    what it created and puts back what it adopted.

    Each entry names the object (``apiVersion``, ``kind``, ``namespace``, ``name``), the
    ``cluster`` it lives on (the uid of that cluster's kube-system namespace: a context name
    outlives its cluster) and the object's own ``uid``; an entry written before a create, whose
    answer has not come back yet, has the creation ``token`` instead. An adopted entry carries
    ``"adopted": true`` and ``backup``, the object as it was before meshtutor changed it; adopting
    the same object again keeps the first backup.

    The app and ``meshtutor run`` may write it at once: every read-modify-write holds an
    exclusive lock on a file beside it, and writes through a temporary file of its own."""

    def __init__(self, context: str, cluster: str | None = None) -> None:
        self.context = context
        self.cluster = cluster
        self.path = context_file(context)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, of every cluster the context has named."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise self._damaged(str(getattr(exc, "strerror", None) or exc)) from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise self._damaged("it is not meshtutor's JSON") from None
        if not isinstance(data, list):
            raise self._damaged("it is not a list of objects")
        for number, entry in enumerate(data, start=1):
            problem = _entry_problem(entry)
            if problem:
                raise self._damaged(f"entry {number} {problem}")
        return data

    def here(self) -> list[dict[str, Any]]:
        """The entries of this journal's cluster."""
        return [e for e in self.entries() if e["cluster"] == self.cluster]

    def elsewhere(self) -> list[dict[str, Any]]:
        """The entries of other clusters that had this context's name."""
        return [e for e in self.entries() if e["cluster"] != self.cluster]

    def _damaged(self, why: str) -> KubeError:
        # Never read a damaged journal as empty: the next write would drop the backups of
        # adopted objects, and reset could no longer put the user's objects back.
        return KubeError(
            f"meshtutor's journal {self.path} cannot be read ({why}); it lists what meshtutor "
            "created on this cluster and the backups of what it adopted. Repair or move it "
            "aside (meshtutor then starts a new one and forgets what the old one listed)"
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as lock:
            lock.seek(0)  # Windows locks bytes from the position
            _lock_file(lock.fileno())
            yield  # closing the file releases the lock, also when the process dies

    def _update(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """Read, change and write the journal under its lock."""
        with self._locked():
            entries = self.entries()
            changed = change(list(entries))
            if changed != entries:
                self._write(changed)

    def _write(self, entries: list[dict[str, Any]]) -> None:
        self._write_file(self.path, entries)

    @staticmethod
    def _write_file(path: Path, entries: list[dict[str, Any]]) -> None:
        # A temporary file of this writer's own, renamed over the journal: a reader sees the
        # old journal or the new one, never half of one.
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(entries, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _key(
        cluster: str | None, api_version: str | None, ref: ResourceRef
    ) -> tuple[str | None, ...]:
        # The API group, not its version: security.istio.io/v1 and /v1beta1 serve one object,
        # while Istio's and Linkerd's AuthorizationPolicy are two kinds of the same name.
        group = api_version.rpartition("/")[0] if api_version is not None else None
        return (cluster, group, ref.kind, ref.namespace, ref.name)

    @classmethod
    def _entry_key(cls, entry: dict[str, Any]) -> tuple[str | None, ...]:
        ref = ResourceRef(entry["kind"], entry.get("namespace"), entry["name"])
        return cls._key(entry.get("cluster"), entry.get("apiVersion"), ref)

    def add(self, entry: dict[str, Any]) -> None:
        """Add ``entry`` unless the journal has one for its object."""
        key = self._entry_key(entry)
        self._update(
            lambda entries: (
                entries if any(self._entry_key(e) == key for e in entries) else [*entries, entry]
            )
        )

    def put(self, entry: dict[str, Any]) -> None:
        """Record ``entry``, in place of the one for its object if there is one."""
        key = self._entry_key(entry)

        def put(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            at = next((i for i, e in enumerate(entries) if self._entry_key(e) == key), None)
            if at is None:
                return [*entries, entry]
            return [*entries[:at], entry, *entries[at + 1 :]]

        self._update(put)

    def find(self, ref: ResourceRef, api_version: str | None = None) -> dict[str, Any] | None:
        """The entry for ``ref`` on this journal's cluster (of ``api_version``'s group; without
        one, of any group)."""
        _, group, *rest = self._key(self.cluster, api_version, ref)

        def matches(entry: dict[str, Any]) -> bool:
            cluster, entry_group, *entry_rest = self._entry_key(entry)
            return (
                cluster == self.cluster
                and entry_rest == rest
                and (api_version is None or entry_group == group)
            )

        return next((e for e in self.entries() if matches(e)), None)

    def remove(self, *gone: dict[str, Any]) -> None:
        keys = {self._entry_key(e) for e in gone}
        self._update(lambda entries: [e for e in entries if self._entry_key(e) not in keys])

    def set_aside(self, gone: list[dict[str, Any]]) -> Path:
        """Move ``gone`` out of the journal into a file beside it (added to what it holds);
        returns that file."""
        aside = self.path.with_name(self.path.stem + ".other-clusters.json")
        with self._locked():
            try:
                kept = json.loads(aside.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                kept = []
            kept = [*(kept if isinstance(kept, list) else []), *gone]
            Journal._write_file(aside, kept)
            keys = {self._entry_key(e) for e in gone}
            self._write([e for e in self.entries() if self._entry_key(e) not in keys])
        return aside


def _lock_file(fd: int) -> None:
    """Wait for an exclusive lock on ``fd`` (released when it is closed)."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
                return
            except OSError:
                continue  # LK_LOCK gives up after 10 s; another meshtutor is still writing
    fcntl.flock(fd, fcntl.LOCK_EX)


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with a journal entry (every field reset, delete and restore use), or
    None."""
    if not isinstance(entry, dict):
        return "is not an object"
    for name in ("apiVersion", "kind", "name", "cluster"):
        if not isinstance(entry.get(name), str) or not entry[name]:
            return f"has no {name}"
    for name in ("namespace", "uid", "token", "lesson"):
        if entry.get(name) is not None and not isinstance(entry[name], str):
            return f"has a {name} that is not text"
    if not isinstance(entry.get("adopted", False), bool):
        return "has an adopted field that is not true or false"
    if entry.get("adopted"):
        backup = entry.get("backup")
        if not isinstance(backup, dict):
            return "is adopted and has no backup"
        meta = backup.get("metadata")
        if not isinstance(meta, dict) or meta.get("name") != entry["name"]:
            return "is adopted and its backup is not the object it names"
    return None


class UnknownKind(KubeError):
    """The cluster does not serve this kind (its CRDs are not installed)."""


class OwnershipConflict(KubeError):
    """Objects exist that meshtutor did not create; it changes none of them unless told to
    adopt them."""

    def __init__(
        self, refs: Sequence[ResourceRef], context: str, scope: Literal["apply", "lesson"] = "apply"
    ) -> None:
        self.refs = list(dict.fromkeys(refs))  # a lesson may apply one object twice
        names = ", ".join(str(r) for r in self.refs)
        if len(self.refs) == 1:
            what, it, was = f"{names} exists and is not meshtutor's", "it", "it was"
        else:
            what = f"{len(self.refs)} objects exist and are not meshtutor's: {names}"
            it, was = "them", "they were"
        super().__init__(
            f"{what} (meshtutor's journal for context {context} does not record {it} as created "
            f"or adopted on this cluster): meshtutor stopped before changing any object of this {scope}. Pass "
            f"--adopt to take {it} over: meshtutor backs {it} up first, and `meshtutor reset "
            f"--context {context}` puts {it} back as {was}"
        )


#: What a namespace can hold that is someone's work, checked before meshtutor deletes a namespace
#: it created (deleting a namespace deletes everything in it): workloads, their configuration and
#: storage, and the policies meshtutor knows. Each kind the cluster does not serve is skipped.
NAMESPACE_CONTENTS = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "CronJob"),
    ("batch/v1", "Job"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ServiceAccount"),
    *[
        (api_version, kind)
        for api_version, kind in READ_BACK
        if api_version.startswith(("networking.", "security.", "policy."))
        and kind not in ("IngressClass",)
    ],
]
#: Controllers whose objects are made for an owner that is itself checked: a Deployment's
#: ReplicaSets and their pods, a StatefulSet's or a DaemonSet's pods, a CronJob's Jobs.
CHECKED_OWNERS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "CronJob", "Job"}
#: What the cluster and the mesh put in every namespace: the API server's CA bundle (the
#: root-ca-cert-publisher controller), istiod's root certificate (its NamespaceController,
#: ``istio-ca-root-cert``, pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go), the
#: ``default`` service account (the serviceaccount controller) and,
#: before Kubernetes 1.24, its token Secret.
EVERY_NAMESPACE = {
    ("ConfigMap", "kube-root-ca.crt"),
    ("ConfigMap", "istio-ca-root-cert"),
    ("ServiceAccount", "default"),
}

#: Metadata the API server sets; a backup leaves it out, and a restore lets the server set it.
SERVER_SET_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def backup_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as it was, minus what the server sets (metadata above, ``status``)."""
    backup: dict[str, Any] = json.loads(json.dumps(obj))
    backup.pop("status", None)
    meta = backup.get("metadata") or {}
    for name in SERVER_SET_METADATA:
        meta.pop(name, None)
    return backup


def is_meshtutors(current: dict[str, Any], entry: dict[str, Any] | None) -> bool:
    """Whether the live object ``current`` is the one meshtutor's journal ``entry`` (for this
    cluster) records, and so meshtutor's to change or delete.

    The uid is what decides: the API server gives every object a new one, so the user's object
    of the same name (on a recreated cluster, or after meshtutor's was deleted) never matches.
    An entry written before a create whose answer never came back has no uid yet; the object
    is then meshtutor's when it carries the creation token that entry recorded. meshtutor's
    ``managed-by`` label proves nothing: anyone can write it, and it travels with every copy of
    the object (a backup restored, a GitOps copy, ``kubectl get -o yaml | kubectl apply``)."""
    if entry is None:
        return False
    meta = _meta(current)
    if entry.get("uid"):
        return bool(meta.get("uid") == entry["uid"])
    token = entry.get("token")
    return bool(token) and _dict(meta.get("annotations")).get(CREATED_ANNOTATION) == token


def metadata_patch(doc: Resource) -> dict[str, Any]:
    """The merge patch that turns the live object ``doc.raw`` (as read back) into ``doc``'s
    labels and annotations: what a label or annotate action changed, a removed key as null."""

    def diff(old: Any, new: Any) -> dict[str, str | None]:
        old, new = dict(old or {}), dict(new or {})
        changed: dict[str, str | None] = {k: v for k, v in new.items() if old.get(k) != v}
        changed.update({k: None for k in old if k not in new})
        return changed

    raw = doc.raw
    if isinstance(doc, Deployment):
        template = ((raw.get("spec") or {}).get("template") or {}).get("metadata") or {}
        changed = {
            "labels": diff(template.get("labels"), doc.template.labels),
            "annotations": diff(template.get("annotations"), doc.template.annotations),
        }
        inner = {k: v for k, v in changed.items() if v}
        return {"spec": {"template": {"metadata": inner}}} if inner else {}
    meta = raw.get("metadata") or {}
    changed = {
        "labels": diff(meta.get("labels"), doc.metadata.labels),
        "annotations": diff(meta.get("annotations"), doc.metadata.annotations),
    }
    inner = {k: v for k, v in changed.items() if v}
    return {"metadata": inner} if inner else {}


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else {}: what a field of a malformed object reads as."""
    return value if isinstance(value, dict) else {}


def _list_of_dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings of a list field, skipping whatever else a malformed object holds."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _count(value: Any) -> int:
    """A replica count or generation, 0 when it is not a number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(_meta(obj).get("labels"))


#: A Secret's name (a DNS-1123 subdomain): what meshtutor asks the API for by name.
_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def _meta(obj: Any) -> dict[str, Any]:
    """An object's metadata, or {} when it has none a Kubernetes object could have."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


@dataclass(frozen=True)
class _Change:
    """One document of an apply, planned against the object the cluster holds now."""

    doc: Resource
    resource: Any  # the client's resource type
    ref: ResourceRef
    current: dict[str, Any] | None  # None: the object does not exist yet
    entry: dict[str, Any] | None  # meshtutor's journal entry for its name, if any
    patch: dict[str, Any] | None  # a label/annotate action's merge patch; None: apply doc
    foreign: bool  # it exists and is not meshtutor's

    @property
    def adopted(self) -> bool:
        """Whether the object is (or is about to be) an adopted one, the user's rather than
        meshtutor's creation: meshtutor does not label it as its own."""
        return self.foreign or bool(self.entry is not None and self.entry.get("adopted"))

    @property
    def stale(self) -> bool:
        """Whether the journal entry names an object that is no longer there (deleted, or
        replaced by another of the same name)."""
        return self.entry is not None and (
            self.current is None or not is_meshtutors(self.current, self.entry)
        )


class KubeBackend:
    """The Backend protocol against a real cluster (see the module docstring)."""

    def __init__(
        self,
        mesh: Mesh = "istio",
        *,
        context: str | None = None,
        kubeconfig: str | None = None,
        allow_remote: bool = False,
        adopt: bool = False,
        lesson: str | None = None,
        dry_run: bool = False,
        request_timeout: float = REQUEST_TIMEOUT,
        rollout_timeout: float = 180.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.mesh: Mesh = mesh
        self._context = context
        self._kubeconfig = kubeconfig
        self._allow_remote = allow_remote
        self.adopt = adopt
        self.lesson = lesson
        self.dry_run = dry_run
        self.request_timeout = request_timeout
        self.rollout_timeout = rollout_timeout
        self._progress = progress or (lambda message: None)
        self.target: Target | None = None
        self.journal: Journal | None = None
        self.cluster_uid = ""
        self._configuration: Any = None
        # Namespaces a dry run would have created, over the whole run (a lesson applies its
        # namespaces in one file and their workloads in the next).
        self._dry_run_namespaces: set[str] = set()
        self._api: Any = None
        self._dynamic: Any = None
        self._cluster: Cluster | None = None

    # --- connection ---------------------------------------------------------------------------

    async def start(self) -> KubeBackend:
        await asyncio.to_thread(self._connect)
        return self

    def _connect(self) -> None:
        self.target = resolve_target(self._kubeconfig, self._context)
        check_local(self.target, self._allow_remote)
        from kubernetes.dynamic import DynamicClient

        try:
            self._configuration = client_configuration(self.target)
            self._api = api_client(configuration=self._configuration, timeout=self.request_timeout)
            server_version(self._api, self.request_timeout)
        except Exception as exc:
            raise KubeError(self._explain(exc, "connect to the API server")) from None
        self.cluster_uid = self._cluster_identity()
        try:
            # Discovery is cached per context and cluster in our data dir (the client's default
            # is a temp file named after the server URL, stale after a mesh is installed, and
            # shared by clusters created one after the other on the same port).
            cache = context_file(self.target.context, "discovery-", f"-{self.cluster_uid}.json")
            cache.parent.mkdir(parents=True, exist_ok=True)
            self._dynamic = DynamicClient(self._api, cache_file=str(cache))
        except Exception as exc:
            raise KubeError(self._explain(exc, "connect to the API server")) from None
        self.journal = Journal(self.target.context, self.cluster_uid)

    def _cluster_identity(self) -> str:
        """The uid of the cluster's kube-system namespace, which lives as long as the cluster:
        the cluster's identity in meshtutor's journal (the identifier SIG Multicluster's
        KEP-2149 recommends for a cluster's id, and the one many tools use). A context name
        does not do: ``kind delete cluster; kind create cluster`` keeps it."""
        from kubernetes import client as kclient

        doing = "read namespace kube-system (its uid tells meshtutor which cluster this is)"
        try:
            response: Any = kclient.CoreV1Api(self._api).read_namespace(
                "kube-system", _preload_content=False, _request_timeout=self.request_timeout
            )
            data = json.loads(response.data)
        except client_errors() as exc:
            raise KubeError(self._explain(exc, doing)) from None
        except (ValueError, RecursionError):
            raise KubeError(f"cannot {doing}: {self._server} did not answer JSON") from None
        uid = _meta(data).get("uid") if isinstance(data, dict) else None
        if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", uid):
            raise KubeError(f"cannot {doing}: {self._server} answered it without a uid")
        return uid

    @property
    def _server(self) -> str:
        return self.target.server if self.target else "the API server"

    async def stop(self) -> None:
        if self._api is not None:
            await asyncio.to_thread(self._api.close)
            self._api = None

    @staticmethod
    def _explain_forbidden(doing: str) -> str:
        return (
            f"cannot {doing}: the API server said 403 Forbidden; your user lacks the "
            "permission (check with `kubectl auth can-i`)"
        )

    def _explain(self, exc: BaseException, doing: str) -> str:
        server = self._server
        status = getattr(exc, "status", None)
        if status == 403:
            return self._explain_forbidden(doing)
        if status == 404:
            return f"cannot {doing}: not found (404)"
        if status == 409:
            return f"cannot {doing}: conflict (409), another manager owns these fields"
        text = str(exc)
        status_message = re.search(r'"message":"((?:[^"\\]|\\.)*)"', text)
        if status == 0 and status_message:  # a refused websocket upgrade carries a Status
            return f"cannot {doing}: {status_message.group(1)}"
        if isinstance(status, int) and status >= 400:
            reason = getattr(exc, "reason", "") or ""
            return f"cannot {doing}: {server} answered {status} {reason}".rstrip()
        return f"cannot {doing}: {server} {client_error_reason(exc, self.request_timeout)}"

    async def _in_thread(self, doing: str, call: Callable[[], T]) -> T:
        # The thread's wait is bounded by its requests': each ends within its deadline, answered
        # or not (``socket_deadline``: its socket is shut, which a per-read timeout could not
        # do), and a rollout waits ``rollout_timeout``. The thread itself reports the failure, after
        # its request was cut off, so it can send nothing after meshtutor said it failed; a write
        # cut off while its answer trickled in may have reached the server before.
        return await asyncio.to_thread(self._guard, doing, call)

    def _guard(self, doing: str, call: Callable[[], T]) -> T:
        """``call()``, with the client library's errors turned into one-line ``KubeError``s."""
        try:
            return call()
        except MeshtutorError:
            raise
        except client_errors() as exc:
            raise KubeError(self._explain(exc, doing)) from None

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._guard(
                f"look {kind} ({api_version}) up in the API's discovery",
                lambda: self._dynamic.resources.get(api_version=api_version, kind=kind),
            )
        except ResourceNotFoundError:
            group = api_version.rsplit("/", 1)[0]
            owner = (
                "Istio" if "istio" in group else "Linkerd" if "linkerd" in group else "the cluster"
            )
            raise UnknownKind(
                f"the cluster does not know {kind} ({api_version}): is {owner} "
                "installed? (`meshtutor doctor` checks)"
            ) from None

    # --- writing --------------------------------------------------------------------------

    def _body(self, change: _Change, token: str | None = None) -> dict[str, Any]:
        """What meshtutor sends for ``change``: the manifest, labelled as meshtutor's unless the
        object is the user's (adopted): a label on the user's object would claim what only the
        journal can back. ``token``: the creation token of a create."""
        resource = change.doc
        body: dict[str, Any] = json.loads(json.dumps(resource.raw, default=str))
        meta = body.setdefault("metadata", {})
        if resource.namespace and resource.kind != "Namespace":
            meta["namespace"] = resource.namespace
        if not change.adopted:
            labels = meta.setdefault("labels", {}) or {}
            labels[MANAGED_BY] = "meshtutor"
            if self.lesson:
                labels[LESSON_LABEL] = self.lesson
            meta["labels"] = labels
        if token:
            meta["annotations"] = {**(meta.get("annotations") or {}), CREATED_ANNOTATION: token}
        body.pop("status", None)
        return body

    async def apply(self, docs: Sequence[Resource]) -> ApplyReport:
        return await self._in_thread("apply", lambda: self._apply(list(docs)))

    def _apply(self, docs: list[Resource]) -> ApplyReport:
        """Read every object first, and refuse the whole batch, before changing anything, when
        one of them exists and is not meshtutor's (unless ``adopt``). Then change them in order,
        each journalled before it changes."""
        report = ApplyReport()
        changes: list[_Change | str] = []  # a str: what a dry run says instead
        new_namespaces = self._dry_run_namespaces
        for doc in docs:
            if self.dry_run and doc.namespace in new_namespaces and doc.kind != "Namespace":
                # The server cannot dry-run an object whose namespace does not exist yet.
                changes.append(
                    f"{doc.kind.lower()}/{doc.name} would be created (in "
                    f"namespace {doc.namespace}, new in this dry run)"
                )
                continue
            if isinstance(doc, UnmodelledResource):
                report.unmodelled.append(doc.ref)
            planned = self._plan(doc)
            if doc.kind == "Namespace" and planned.current is None:
                new_namespaces.add(doc.name)
            changes.append(planned)
        self._refuse_foreign([c for c in changes if isinstance(c, _Change)], "apply")
        for change in changes:
            if isinstance(change, str):
                report.lines.append(change)
                continue
            if change.foreign and not self.adopt:  # a dry run says what a real run would do
                report.lines.append(
                    f"{change.ref} exists and is not meshtutor's: a real run would stop here "
                    "and change nothing (--adopt takes it over)"
                )
                continue
            if change.foreign:
                report.lines.append(
                    f"{change.ref} is not meshtutor's: adopted, its original is backed up "
                    "for `meshtutor reset`"
                    + (" (dry run: nothing backed up)" if self.dry_run else "")
                )
            report.lines.append(self._change(change))
        self._cluster = None
        return report

    async def check_ownership(self, docs: Sequence[Resource]) -> None:
        """Before a lesson's first change: refuse, naming them all, when any of ``docs`` (every
        object the lesson would create or change) exists and is not meshtutor's; the check of
        each apply, over the whole lesson. With ``adopt`` (each object is backed up when it
        first changes) or in a dry run (each apply says where it would stop), nothing to do."""
        if self.adopt or self.dry_run:
            return
        await self._in_thread(
            "check what the lesson would change", lambda: self._check_ownership(list(docs))
        )

    def _check_ownership(self, docs: list[Resource]) -> None:
        # Read each object once, in lesson order: a lesson applies some twice (in two steps,
        # or in a step and its solution).
        unique: dict[tuple[str, ResourceRef], Resource] = {}
        for doc in docs:
            unique.setdefault((doc.api_version, doc.ref), doc)
        changes = []
        for doc in unique.values():
            try:
                changes.append(self._plan(doc))
            except UnknownKind:
                continue  # no such object can exist; the apply says what the cluster lacks
        self._refuse_foreign(changes, "lesson")

    def _refuse_foreign(
        self, changes: Sequence[_Change], scope: Literal["apply", "lesson"]
    ) -> None:
        """The ownership check: stop before ``changes`` change anything when one of them
        exists and is not meshtutor's, naming every such object (unless ``adopt``; a dry run
        reports each one instead)."""
        foreign = [c.ref for c in changes if c.foreign]
        if foreign and not self.adopt and not self.dry_run:
            raise OwnershipConflict(foreign, self._context_name, scope)

    def _plan(self, doc: Resource) -> _Change:
        """What applying ``doc`` would change, read from the cluster as it is now."""
        resource = self._resource(doc.api_version, doc.kind)
        namespace = doc.namespace if resource.namespaced else None
        ref = ResourceRef(doc.kind, namespace, doc.name)
        current = self._get(resource, ref)
        entry = self._journalled(ref, doc.api_version)
        owned = current is None or is_meshtutors(current, entry)
        # A label or annotate action hands over the live object, read back from this cluster
        # (so its raw document carries the server's uid; a manifest never does), with its new
        # labels or annotations in the typed fields.
        live = (doc.raw.get("metadata") or {}).get("uid") if isinstance(doc.raw, dict) else None
        patch = metadata_patch(doc) if live and current is not None else None
        return _Change(doc, resource, ref, current, entry, patch, foreign=not owned)

    def _entry(self, change: _Change, **fields: Any) -> dict[str, Any]:
        """A journal entry for ``change``'s object on this cluster."""
        return {
            "apiVersion": change.doc.api_version,
            "kind": change.ref.kind,
            "namespace": change.ref.namespace,
            "name": change.ref.name,
            "cluster": self.cluster_uid,
            "lesson": self.lesson,
            "at": time.time(),
            **fields,
        }

    def _journal_before(self, change: _Change) -> None:
        """Before meshtutor first changes an object that is not its own: the journal entry with
        its backup, so that a crash cannot lose what ``reset`` needs to put it back. Adopting it
        again keeps the first backup; an entry left by an object of that name that is gone is
        replaced."""
        assert self.journal is not None and change.current is not None
        if not change.foreign:
            return
        uid = _meta(change.current).get("uid")
        self.journal.put(
            self._entry(change, uid=uid, adopted=True, backup=backup_of(change.current))
        )

    def _change(self, change: _Change) -> str:
        """Make the change: create what does not exist, update what is meshtutor's (or adopted),
        each guarded against a write by someone else since meshtutor read the cluster."""
        if change.current is None:
            return self._create(change)
        if not self.dry_run:
            self._journal_before(change)
            if change.entry is not None and not change.foreign and not change.entry.get("uid"):
                # meshtutor's create whose answer was lost (known by its token): its uid now.
                assert self.journal is not None
                self.journal.put({**change.entry, "uid": _meta(change.current)["uid"]})
        doc, resource = change.doc, change.resource
        suffix = " (server dry run)" if self.dry_run else ""
        # The resourceVersion meshtutor read is a precondition of the write: the server refuses
        # it (409 Conflict) if anyone changed the object since (Store.Update in apiserver's
        # pkg/registry/generic/registry/store.go; patches and applies alike, kubernetes#63104).
        version = _meta(change.current).get("resourceVersion")
        try:
            if change.patch is not None:
                # A label or annotate action (the live object with new metadata): send only
                # the difference, as `kubectl label` does, so that no other field changes hands.
                body = json.loads(json.dumps(change.patch))
                body.setdefault("metadata", {})["resourceVersion"] = version
                resource.patch(
                    body=body,
                    name=doc.name,
                    namespace=change.ref.namespace,
                    content_type="application/merge-patch+json",
                    field_manager=FIELD_MANAGER,
                    dry_run="All" if self.dry_run else None,
                    _request_timeout=self.request_timeout,
                )
                return f"{doc.kind.lower()}/{doc.name} patched{suffix}"
            body = self._body(change)
            body["metadata"]["resourceVersion"] = version
            applied = resource.server_side_apply(
                body=body,
                name=doc.name,
                namespace=change.ref.namespace,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                dry_run="All" if self.dry_run else None,
                serialize=False,
                _request_timeout=self.request_timeout,
            )
        except client_errors() as exc:
            if getattr(exc, "status", None) == 409:
                raise self._changed_meanwhile(change.ref) from None
            raise KubeError(self._explain(exc, f"apply {doc.kind} {doc.name}")) from None
        if not self.dry_run:
            # An apply creates the object if it was deleted since meshtutor read it (the API
            # server does not hold a create to the resourceVersion): record the new one's uid.
            uid = _meta(self._object(self._answer(applied, str(change.ref)), str(change.ref)))[
                "uid"
            ]
            entry = self._journalled(change.ref, doc.api_version)
            if entry is not None and entry.get("uid") != uid:
                assert self.journal is not None
                self.journal.put({**entry, "uid": uid})
        return f"{doc.kind.lower()}/{doc.name} serverside-applied{suffix}"

    @staticmethod
    def _changed_meanwhile(ref: ResourceRef) -> KubeError:
        return KubeError(
            f"{ref} changed after meshtutor read it (409 Conflict: someone else wrote it in "
            "between): meshtutor did not change it and stopped here; run the step again"
        )

    def _create(self, change: _Change) -> str:
        """Create an object that did not exist, with POST: if someone else created it since
        meshtutor read the cluster, the server refuses (409 AlreadyExists) instead of handing
        their object to meshtutor, as a forced server-side apply would. The journal entry is
        written first, with a creation token the object carries, and gets the uid once the
        server answers."""
        from kubernetes.dynamic.exceptions import ConflictError

        doc, resource, ref = change.doc, change.resource, change.ref
        assert self.journal is not None
        token = None if self.dry_run else uuid.uuid4().hex
        pending: dict[str, Any] | None = None
        if token is not None:
            # An adopted object that a lesson deleted stays adopted (reset puts its backup
            # back); any other entry of that name is stale and replaced.
            kept = (
                {"adopted": True, "backup": change.entry["backup"]}
                if change.entry is not None and change.entry.get("adopted")
                else {}
            )
            pending = self._entry(change, token=token, **kept)
            self.journal.put(pending)
        try:
            created = resource.create(
                body=self._body(change, token),
                namespace=ref.namespace,
                field_manager=FIELD_MANAGER,
                dry_run="All" if self.dry_run else None,
                serialize=False,
                _request_timeout=self.request_timeout,
            )
        except ConflictError:
            if pending is not None:
                # meshtutor created nothing: the name is not its own.
                if change.entry is not None:
                    self.journal.put(change.entry)
                else:
                    self.journal.remove(pending)
            raise KubeError(
                f"{ref} was created by someone else after meshtutor read the cluster (409 "
                "AlreadyExists): it is not meshtutor's, and meshtutor left it alone and stopped "
                "here; run the step again to see it as a conflict (--adopt takes it over)"
            ) from None
        except client_errors() as exc:
            # The entry stays: the create may have happened (its answer lost), and then the
            # object carries the token.
            raise KubeError(self._explain(exc, f"apply {doc.kind} {doc.name}")) from None
        if pending is None:
            return f"{doc.kind.lower()}/{doc.name} created (server dry run)"
        obj = self._object(self._answer(created, f"the created {ref}"), f"the created {ref}")
        self.journal.put({**pending, "uid": _meta(obj)["uid"]})
        self._take_fields(resource, ref, obj)
        return f"{doc.kind.lower()}/{doc.name} created"

    def _take_fields(self, resource: Any, ref: ResourceRef, obj: dict[str, Any]) -> None:
        """Move the fields the create gave meshtutor's ``Update`` entry in managedFields to its
        ``Apply`` entry, as kubectl's client-side-apply upgrade does
        (``csaupgrade.UpgradeManagedFields`` in client-go): otherwise a field a later version
        of the manifest leaves out would stay, still owned by the create, where `kubectl apply
        --server-side` removes it. The patch carries the resourceVersion, so it never replaces
        managedFields that changed since; if it fails, the object is meshtutor's all the same."""
        entries = _meta(obj).get("managedFields")
        if not isinstance(entries, list):
            return
        mine = [
            i
            for i, e in enumerate(entries)
            if isinstance(e, dict)
            and e.get("manager") == FIELD_MANAGER
            and e.get("operation") == "Update"
            and not e.get("subresource")
        ]
        if not mine:
            return
        upgraded = [dict(e) for e in entries]
        upgraded[mine[0]]["operation"] = "Apply"
        upgraded = [e for i, e in enumerate(upgraded) if i not in mine[1:]]
        with contextlib.suppress(*client_errors()):
            resource.patch(
                body={
                    "metadata": {
                        "resourceVersion": _meta(obj).get("resourceVersion"),
                        "managedFields": upgraded,
                    }
                },
                name=ref.name,
                namespace=ref.namespace,
                content_type="application/merge-patch+json",
                _request_timeout=self.request_timeout,
            )

    def _get(
        self, resource: Any, ref: ResourceRef, *, forbidden_ok: bool = False
    ) -> dict[str, Any] | None:
        """The object as the API server has it, or None when it does not exist (or, with
        ``forbidden_ok``, when the user may not read it)."""
        from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError

        try:
            response = resource.get(
                name=ref.name,
                namespace=ref.namespace,
                serialize=False,
                _request_timeout=self.request_timeout,
            )
        except NotFoundError:
            return None
        except ForbiddenError:
            if forbidden_ok:
                return None
            raise KubeError(self._explain_forbidden(f"read {ref}")) from None
        except client_errors() as exc:
            raise KubeError(self._explain(exc, f"read {ref}")) from None
        return self._object(self._answer(response, str(ref)), str(ref))

    def _answer(self, response: Any, what: str) -> Any:
        """The JSON of an answer of the dynamic client, called with ``serialize=False``: meshtutor
        parses it itself, since the client's own parsing raises KeyError or TypeError on what a
        broken or hostile server answers."""
        try:
            return json.loads(response.data)
        except (ValueError, RecursionError, AttributeError, TypeError):
            raise KubeError(
                f"{self._server} answered {what} with something that is not JSON"
            ) from None

    def _object(self, found: Any, what: str) -> dict[str, Any]:
        """``found``, checked to be an object with metadata (a name and a uid): what a broken
        or hostile server answers instead is a one-line error."""
        meta = found.get("metadata") if isinstance(found, dict) else None
        if not isinstance(meta, dict):
            raise KubeError(f"{self._server} answered {what} with an object without metadata")
        if not all(isinstance(meta.get(k), str) and meta[k] for k in ("name", "uid")):
            raise KubeError(f"{self._server} answered {what} with an object without a name or uid")
        assert isinstance(found, dict)
        return found

    def _list(
        self,
        resource: Any,
        what: str,
        namespace: str | None = None,
        *,
        forbidden_ok: bool = False,
        **selectors: str,
    ) -> list[dict[str, Any]] | None:
        """Every object of ``resource`` (in ``namespace``, matching ``selectors``), read
        ``LIST_PAGE`` at a time, and at most ``LIST_LIMIT`` in all: a cluster that holds more is
        not a learner's, and meshtutor stops with one line. ``forbidden_ok``: None when the user
        may not list them (403)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(LIST_PAGES):
            try:
                response = resource.get(
                    namespace=namespace,
                    limit=LIST_PAGE,
                    _continue=token,
                    serialize=False,
                    _request_timeout=self.request_timeout,
                    **selectors,
                )
            except client_errors() as exc:
                if forbidden_ok and getattr(exc, "status", None) == 403:
                    return None
                raise KubeError(self._explain(exc, f"list {what}")) from None
            page = self._answer(response, f"the list of {what}")
            listed = page.get("items") if isinstance(page, dict) else None
            if not isinstance(listed, list):
                raise KubeError(f"{self._server} answered the list of {what} without items")
            items += [self._object(item, f"the list of {what}") for item in listed]
            if len(items) > LIST_LIMIT:
                break
            token = _meta(page).get("continue")
            if not token or not isinstance(token, str):
                return items
        raise KubeError(
            f"{self._server} lists more than {LIST_LIMIT} {what} (or more than {LIST_PAGES} "
            f"pages of them): more than meshtutor reads from a cluster; is this a learning "
            "cluster?"
        )

    def _journalled(self, ref: ResourceRef, api_version: str) -> dict[str, Any] | None:
        assert self.journal is not None
        return self.journal.find(ref, api_version)

    @property
    def _context_name(self) -> str:
        return self.target.context if self.target else (self._context or "")

    # --- cluster components -------------------------------------------------------------

    async def install(self, name: str, docs: Sequence[Resource]) -> list[str]:
        """Check that a cluster component a lesson needs is there and ready. meshtutor never
        installs or changes what it did not create: ``docs`` (the sandbox's copy) go unused,
        and nothing is written."""
        return await self._in_thread(f"check {name}", lambda: self._install(name))

    def _install(self, name: str) -> list[str]:
        from meshtutor.lessons.model import COMPONENTS

        component = COMPONENTS.get(name)
        if component is None:
            raise ClusterStateError(
                f"unknown component {name!r}; known: {', '.join(sorted(COMPONENTS))}"
            )
        ns, dep_name, svc_name = (
            component["namespace"],
            component["deployment"],
            component["service"],
        )
        deployment = self._read("apps/v1", "Deployment", dep_name, ns)
        service = self._read("v1", "Service", svc_name, ns)
        missing = [
            f"{kind} {ns}/{obj_name}"
            for kind, obj_name, obj in (
                ("deployment", dep_name, deployment),
                ("service", svc_name, service),
            )
            if obj is None
        ]
        if deployment is None or service is None:
            raise ClusterStateError(
                f"{component['what']} is not installed in this cluster (no "
                f"{' and no '.join(missing)}) and meshtutor does not install cluster "
                f"components: install it with {self._install_hint(name)}, then run the "
                "lesson again"
            )
        want = _count(_dict(deployment.get("spec")).get("replicas", 1))
        available = _count(_dict(deployment.get("status")).get("availableReplicas"))
        if available < 1:
            raise ClusterStateError(
                f"{component['what']} is installed but not ready (deployment {ns}/{dep_name}: "
                f"{available}/{want} available): wait for `kubectl -n {ns} rollout status "
                f"deploy/{dep_name}`, then run the lesson again"
            )
        return [
            f"{name} is installed (deployment {ns}/{dep_name}, {available}/{want} ready; "
            f"service {svc_name}: {describe_service_address(service)})"
        ]

    def _install_hint(self, name: str) -> str:
        from meshtutor.lessons.model import COMPONENTS

        command = f"`{COMPONENTS[name]['command']}`"
        on_kind = self.target is not None and self.target.context.startswith("kind-")
        if name == "ingress-nginx" and on_kind:
            return (
                f"kind's provider manifest, `kubectl apply -f {KIND_INGRESS_NGINX}` "
                f"(elsewhere: {command})"
            )
        return command

    def _read(self, api_version: str, kind: str, name: str, namespace: str | None) -> Any:
        """One object as a dict, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        ref = ResourceRef(kind, namespace if resource.namespaced else None, name)
        return self._get(resource, ref)

    async def delete(self, refs: Sequence[Resource | ResourceRef]) -> list[str]:
        return await self._in_thread("delete", lambda: self._delete(list(refs)))

    def _delete(self, refs: list[Resource | ResourceRef]) -> list[str]:
        """Delete what meshtutor created or adopted (the object its journal records on this
        cluster); anything else is left alone, with a line saying so."""
        assert self.journal is not None
        lines = []
        for item in refs:
            if isinstance(item, Resource):
                api_version = item.api_version
            else:
                found = self.journal.find(item)
                if found is None:
                    continue
                api_version = found["apiVersion"]
            resource = self._resource(api_version, item.kind)
            ref = ResourceRef(item.kind, item.namespace if resource.namespaced else None, item.name)
            what = f'{ref.kind.lower()} "{ref.name}"'
            current = self._get(resource, ref)
            if current is None:
                continue  # already gone, as `kubectl delete --ignore-not-found`
            entry = self.journal.find(ref, api_version)
            if not is_meshtutors(current, entry):
                lines.append(
                    f"{what} left alone: {ref} is not meshtutor's (it deletes only what it "
                    "created or adopted)"
                )
                continue
            assert entry is not None
            adopted = bool(entry.get("adopted"))
            if adopted and ref.kind == "Namespace":
                lines.append(
                    f"{what} left alone: meshtutor adopted {ref}, and deleting it would delete "
                    "what is in it; `meshtutor reset` puts its labels and annotations back"
                )
                continue
            kept = self._keeps_namespace(ref)
            if kept:
                lines.append(f"{what} left alone: {kept}")
                continue
            if self.dry_run:
                lines.append(f"{what} deleted (dry run)")
                continue
            line = self._delete_object(resource, ref, current)
            if line.endswith(" deleted") and not adopted:  # an adopted one: reset recreates it
                self.journal.remove(entry)
            lines.append(line)
        self._cluster = None
        return lines

    def _keeps_namespace(self, ref: ResourceRef) -> str | None:
        """Why meshtutor must not delete ``ref`` if it is a namespace: it holds objects that are
        not meshtutor's (deleting a namespace deletes all it holds), or meshtutor may not list
        them; None otherwise (or when ``ref`` is not a namespace)."""
        if ref.kind != "Namespace":
            return None
        assert self.journal is not None
        mine = {e.get("uid") for e in self.journal.here()} - {None}
        theirs: list[str] = []
        for api_version, kind in NAMESPACE_CONTENTS:
            try:
                resource = self._resource(api_version, kind)
            except UnknownKind:
                continue  # the cluster does not serve it: nothing of that kind can be there
            what = f"{kind}s in namespace {ref.name}"
            found = self._list(resource, what, ref.name, forbidden_ok=True)
            if found is None:
                return (
                    f"meshtutor may not list the {what} (403), so it cannot tell that deleting "
                    "the namespace would delete nothing of yours"
                )
            for obj in found:
                meta = _meta(obj)
                owners = meta.get("ownerReferences")
                made = isinstance(owners, list) and any(
                    isinstance(o, dict) and o.get("controller") and o.get("kind") in CHECKED_OWNERS
                    for o in owners
                )
                if (
                    meta.get("uid") in mine
                    or made
                    or (kind, meta.get("name")) in EVERY_NAMESPACE
                    or (kind == "Secret" and obj.get("type") == SERVICE_ACCOUNT_TOKEN)
                ):
                    continue
                theirs.append(f"{kind.lower()} {meta.get('name')}")
        if not theirs:
            return None
        n = len(theirs)
        named = ", ".join(theirs[:5]) + (f" and {n - 5} more" if n > 5 else "")
        return (
            f"it holds {n} object{'s' if n > 1 else ''} meshtutor did not create ({named}), "
            "which deleting it would delete"
        )

    def _delete_object(self, resource: Any, ref: ResourceRef, current: dict[str, Any]) -> str:
        """Delete the object meshtutor read as ``current``, and only that one: the uid is a
        precondition of the delete (DeleteOptions.preconditions), so an object of that name
        created since is left alone (409 Conflict)."""
        from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

        what = f'{ref.kind.lower()} "{ref.name}"'
        try:
            resource.delete(
                name=ref.name,
                namespace=ref.namespace,
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "preconditions": {"uid": _meta(current)["uid"]},
                },
                _request_timeout=self.request_timeout,
            )
        except NotFoundError:
            pass
        except ConflictError:
            return (
                f"{what} left alone: {ref} was replaced by another object of that name while "
                "meshtutor was deleting it"
            )
        except client_errors() as exc:
            raise KubeError(self._explain(exc, f"delete {ref}")) from None
        return f"{what} deleted"

    async def restart(self, namespace: str, deployment: str) -> None:
        await self._in_thread(
            f"restart deployment {namespace}/{deployment}",
            lambda: self._restart(namespace, deployment),
        )

    def _restart(self, namespace: str, name: str) -> None:
        """``kubectl rollout restart``, then wait for the rollout, reporting progress."""
        deployments = self._resource("apps/v1", "Deployment")
        # A restart changes the pod template: the user's own deployment is theirs, as for an
        # apply (stop, or with --adopt back it up first so that reset puts it back).
        change = self._plan(Resource("apps/v1", "Deployment", ObjectMeta(name, namespace)))
        self._refuse_foreign([change], "apply")
        if change.foreign and not self.dry_run:
            self._journal_before(change)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patch: dict[str, Any] = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        }
        if change.current is not None:  # the deployment meshtutor checked, unchanged since
            patch["metadata"] = {"resourceVersion": _meta(change.current).get("resourceVersion")}
        try:
            deployments.patch(
                name=name,
                namespace=namespace,
                body=patch,
                content_type="application/strategic-merge-patch+json",
                dry_run="All" if self.dry_run else None,
                _request_timeout=self.request_timeout,
            )
        except client_errors() as exc:
            if getattr(exc, "status", None) == 409:
                raise self._changed_meanwhile(change.ref) from None
            raise KubeError(self._explain(exc, f"restart deployment {namespace}/{name}")) from None
        if self.dry_run:
            return  # nothing rolls out
        self._wait_rollout(deployments, namespace, name)
        self._cluster = None

    def _wait_rollout(self, deployments: Any, namespace: str, name: str) -> None:
        deadline = time.monotonic() + self.rollout_timeout
        ref = ResourceRef("Deployment", namespace, name)
        while True:
            obj = self._get(deployments, ref)
            if obj is None:
                raise ClusterStateError(
                    f"deployment {namespace}/{name} was deleted as it rolled out"
                )
            spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
            want = _count(spec.get("replicas", 1))
            updated = _count(status.get("updatedReplicas"))
            available = _count(status.get("availableReplicas"))
            fresh = _count(status.get("observedGeneration")) >= _count(_meta(obj).get("generation"))
            self._progress(
                f"deployment {namespace}/{name}: {updated}/{want} updated, {available} available"
            )
            if (
                fresh
                and updated >= want
                and available >= want
                and _count(status.get("replicas")) <= want
            ):
                return
            if time.monotonic() > deadline:
                raise KubeError(
                    f"deployment {namespace}/{name} did not finish rolling out in "
                    f"{self.rollout_timeout:g} s (`kubectl rollout status`)"
                )
            time.sleep(0.5)

    async def reset(self) -> list[str]:
        """Undo what meshtutor did on this context (see ``_reset``), in kubectl's words."""
        return await self._in_thread("reset", self._reset)

    def _reset(self) -> list[str]:
        """Undo what the journal lists for this cluster, newest first: delete what meshtutor
        created, put back what it adopted; nothing else. An entry leaves the journal only once
        it is undone. Entries of another cluster that had this context's name are never acted
        on: they are set aside, in one line."""
        assert self.journal is not None
        lines = []
        elsewhere = self.journal.elsewhere()
        if elsewhere:
            kept = self.journal.set_aside(elsewhere)
            n = len(elsewhere)
            lines.append(
                f"{n} {'entry' if n == 1 else 'entries'} of meshtutor's journal for "
                f"{self.journal.context} {'is' if n == 1 else 'are'} from another cluster of "
                "that name (its kube-system namespace differs): not acted on, dropped, and kept "
                f"in {kept}"
            )
        for entry in reversed(self.journal.here()):
            ref = ResourceRef(entry["kind"], entry.get("namespace"), entry["name"])
            what = f'{ref.kind.lower()} "{ref.name}"'
            try:
                resource = self._resource(entry["apiVersion"], entry["kind"])
            except UnknownKind:
                self.journal.remove(entry)  # its API is gone, and every object of it with it
                continue
            current = self._get(resource, ref)
            if entry.get("adopted"):
                lines.append(self._restore(resource, ref, entry, current))
            elif current is not None and not is_meshtutors(current, entry):
                lines.append(
                    f"{what} left alone: {ref} is not the object meshtutor created (that one is "
                    "gone, and this one has its name)"
                )
            elif current is not None:
                holds = self._keeps_namespace(ref)
                if holds:
                    lines.append(
                        f"{what} left alone: {holds}; meshtutor keeps it in its journal, and "
                        "`meshtutor reset` tries again"
                    )
                    continue
                lines.append(self._delete_object(resource, ref, current))
            self.journal.remove(entry)
        self._cluster = None
        return lines

    def _restore(
        self,
        resource: Any,
        ref: ResourceRef,
        entry: dict[str, Any],
        current: dict[str, Any] | None,
    ) -> str:
        """Put an adopted object back as it was: replace it with its backup (the server wants
        the current resourceVersion for that: custom resources allow no unconditional update,
        ``AllowUnconditionalUpdate`` in apiextensions-apiserver's customresource strategy), or
        create it again when a lesson deleted it. An object of that name that is not the one
        meshtutor adopted (or created again) is left as it is."""
        from kubernetes.dynamic.exceptions import ConflictError

        what = f'{ref.kind.lower()} "{ref.name}"'
        for attempt in range(3):
            if attempt:
                current = self._get(resource, ref)
            body: dict[str, Any] = json.loads(json.dumps(entry["backup"]))
            try:
                if current is None:
                    resource.create(
                        body=body,
                        namespace=ref.namespace,
                        field_manager=FIELD_MANAGER,
                        _request_timeout=self.request_timeout,
                    )
                    return f"{what} restored (created again from its backup)"
                if not is_meshtutors(current, entry):
                    return (
                        f"{what} left alone: {ref} is not the object meshtutor adopted (that one "
                        "was deleted, and this one created since); its backup is not put back"
                    )
                body.setdefault("metadata", {})["resourceVersion"] = _meta(current).get(
                    "resourceVersion"
                )
                resource.replace(
                    body=body,
                    name=ref.name,
                    namespace=ref.namespace,
                    field_manager=FIELD_MANAGER,
                    _request_timeout=self.request_timeout,
                )
                return f"{what} restored"
            except ConflictError:
                continue  # it changed between the read and the write: read it again
            except client_errors() as exc:
                raise KubeError(self._explain(exc, f"restore {ref}")) from None
        raise KubeError(f"cannot restore {ref}: it keeps changing; run `meshtutor reset` again")

    # --- reading --------------------------------------------------------------------------

    @property
    def cluster(self) -> Cluster:
        """The policy engine's view, built from the objects actually in the cluster."""
        if self._cluster is None:
            self._cluster = self._guard("read the cluster's objects back", self._read_back)
        return self._cluster

    def _read_back(self) -> Cluster:
        import yaml
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        from meshtutor.lessons.model import COMPONENTS

        # The components lessons ``install`` (the ingress gateway in istio-system) are read
        # back wherever they live: outside probes enter the cluster through them.
        components = {
            (kind, c["namespace"], c[key])
            for c in COMPONENTS.values()
            for kind, key in (("Deployment", "deployment"), ("Service", "service"))
        }
        listed: dict[str, list[dict[str, Any]]] = {}
        for api_version, kind in READ_BACK:
            if kind == "Secret":
                continue  # read last, only those the edge names (``_tls_secrets``)
            try:
                resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                continue
            items = self._list(resource, f"{kind}s") or []
            for item in items:
                item.setdefault("apiVersion", api_version)
                item["kind"] = kind
            listed[kind] = items
        listed["Secret"] = self._tls_secrets(listed)
        cluster = Cluster(self.mesh)
        for _, kind in READ_BACK:
            items = sorted(
                listed.get(kind, []), key=lambda o: str(_meta(o).get("creationTimestamp") or "")
            )
            for item in items:
                meta = _meta(item)
                ns, name = meta.get("namespace"), meta["name"]
                if (
                    kind != "Namespace"
                    and ns in SYSTEM_NAMESPACES
                    and kind not in FROM_EVERY_NAMESPACE
                    and (kind, ns, name) not in components
                ):
                    continue
                if kind == "ConfigMap" and (ns, name) != ("istio-system", "istio"):
                    continue
                meta.pop("managedFields", None)
                try:
                    docs = load_yaml(yaml.safe_dump(item), source=f"cluster {kind} {ns}/{name}")
                    cluster.apply(docs)
                except MeshtutorError:
                    continue  # fields this meshtutor does not know; the prediction ignores it
        return cluster

    def _tls_secrets(self, listed: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The certificate Secrets the edge uses, read one by one: those a Gateway's
        ``credentialName`` names (in the namespace of each gateway workload it selects: where
        Istio looks, "the same namespace as the gateway workload" in its secure-ingress task),
        and those an Ingress's ``secretName`` names (in its
        namespace). No other Secret is read. The API cannot leave a field out of a Secret, so
        each comes with its private key, which is dropped at once: the engine needs the chain,
        and meshtutor keeps and shows no key."""
        wanted: dict[tuple[str, str], None] = {}
        workloads = [
            (_meta(d).get("namespace"), _labels(_dict(_dict(d.get("spec")).get("template"))))
            for d in listed.get("Deployment", [])
        ]
        for gateway in listed.get("Gateway", []):
            spec = _dict(gateway.get("spec"))
            selector = _dict(spec.get("selector"))
            namespaces = [
                ns for ns, labels in workloads if selector and selector.items() <= labels.items()
            ]
            for server in _list_of_dicts(spec.get("servers")):
                name = _dict(server.get("tls")).get("credentialName")
                for ns in namespaces:
                    wanted[(str(ns), str(name))] = None
        for ingress in listed.get("Ingress", []):
            for tls in _list_of_dicts(_dict(ingress.get("spec")).get("tls")):
                wanted[(str(_meta(ingress).get("namespace")), str(tls.get("secretName")))] = None
        try:
            resource = self._resource("v1", "Secret")
        except UnknownKind:
            return []
        secrets: list[dict[str, Any]] = []
        # A hostile cluster could name thousands: the first LIST_PAGE are plenty for a lesson.
        for ns, name in [k for k in wanted if all(map(_SECRET_NAME.fullmatch, k))][:LIST_PAGE]:
            # Not allowed to read it: predict without that certificate.
            secret = self._get(resource, ResourceRef("Secret", ns, name), forbidden_ok=True)
            if secret is None or secret.get("type") != TLS_SECRET_TYPE:
                continue
            data = _dict(secret.get("data"))
            secret["data"] = {k: ("" if k == "tls.key" else v) for k, v in data.items()}
            secret.update(apiVersion="v1", kind="Secret")
            secrets.append(secret)
        return secrets

    async def workloads(self) -> list[WorkloadStatus]:
        return await self._in_thread("list pods", self._workloads)

    def _workloads(self) -> list[WorkloadStatus]:
        pods = self._list(self._resource("v1", "Pod"), "pods") or []
        out = []
        for pod in pods:
            meta, spec = _meta(pod), _dict(pod.get("spec"))
            ns = meta.get("namespace")
            if not isinstance(ns, str) or ns in SYSTEM_NAMESPACES:
                continue
            containers = _list_of_dicts(spec.get("containers"))
            names = {c.get("name") for c in containers + _list_of_dicts(spec.get("initContainers"))}
            sidecar = (
                "istio"
                if "istio-proxy" in names
                else ("linkerd" if "linkerd-proxy" in names else None)
            )
            status = _dict(pod.get("status"))
            statuses = _list_of_dicts(status.get("containerStatuses"))
            ready = bool(statuses) and all(s.get("ready") for s in statuses)
            sa = str(spec.get("serviceAccountName") or "default")
            identity = None
            if sidecar == "istio":
                identity = f"spiffe://cluster.local/ns/{ns}/sa/{sa}"
            elif sidecar == "linkerd":
                identity = f"{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local"
            owner = str(_labels(pod).get("app") or meta["name"])
            out.append(
                WorkloadStatus(
                    ns, owner, sa, sidecar, identity, ready, str(status.get("podIP") or "")
                )
            )
        return out

    def _pod_for(self, namespace: str, deployment: str) -> str:
        return self._pod_and_container(namespace, deployment)[0]

    def _pod_and_container(self, namespace: str, deployment: str) -> tuple[str, str]:
        """The newest running pod of a deployment and its default container (the API server
        wants a container name for multi-container pods; kubectl picks it client-side)."""
        ref = ResourceRef("Deployment", namespace, deployment)
        dep = self._get(self._resource("apps/v1", "Deployment"), ref)
        if dep is None:
            raise ClusterStateError(f"there is no deployment {namespace}/{deployment}")
        labels = _dict(_dict(dep.get("spec")).get("selector")).get("matchLabels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise KubeError(
                f"{self._server} answered {ref} with a selector that is not a map of labels"
            )
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = self._list(
            self._resource("v1", "Pod"),
            f"pods of deployment {namespace}/{deployment}",
            namespace,
            label_selector=selector,
        )
        running = [
            p
            for p in pods or []
            if _dict(p.get("status")).get("phase") == "Running"
            and not _meta(p).get("deletionTimestamp")
        ]
        if not running:
            raise ClusterStateError(f"deployment {namespace}/{deployment} has no running pod")
        running.sort(key=lambda p: str(_meta(p).get("creationTimestamp") or ""), reverse=True)
        pod = running[0]
        annotations = _dict(_meta(pod).get("annotations"))
        containers = [
            str(c.get("name")) for c in _list_of_dicts(_dict(pod.get("spec")).get("containers"))
        ]
        default = annotations.get("kubectl.kubernetes.io/default-container") or (
            containers[0] if containers else ""
        )
        return str(_meta(pod)["name"]), str(default)

    def _exec(
        self, namespace: str, pod: str, container: str | None, command: list[str], timeout: float
    ) -> tuple[str, str, int]:
        from kubernetes import client as kclient
        from kubernetes.stream import stream

        _bound_exec_websockets()
        # A client of its own: ``stream`` swaps the ``call_api`` of the client it is given while
        # it runs, which would send the calls of probes running in parallel into a websocket.
        api = api_client(configuration=self._configuration, timeout=self.request_timeout)
        core = kclient.CoreV1Api(api)
        bounded = _WEBSOCKET_TIMEOUT.set(self.request_timeout)
        upgrade = 2 * self.request_timeout  # to connect, and to be answered in full
        try:
            with socket_deadline(upgrade) as watch:
                resp = stream(
                    core.connect_get_namespaced_pod_exec,
                    pod,
                    namespace,
                    command=command,
                    container=container,
                    stderr=True,
                    stdin=False,
                    stdout=True,
                    tty=False,
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
        except Exception as exc:
            api.close()
            if watch.expired:
                raise KubeError(
                    f"cannot exec in {namespace}/{pod}: {self._server} did not answer in full in "
                    f"{upgrade:g} s"
                ) from None
            raise KubeError(self._explain(exc, f"exec in {namespace}/{pod}")) from None
        finally:
            _WEBSOCKET_TIMEOUT.reset(bounded)
        stdout, stderr = [], []
        deadline = time.monotonic() + timeout
        try:
            # The loop's own deadline is checked between frames; the socket's ends a frame
            # that never ends.
            with socket_deadline(timeout + self.request_timeout) as frames:
                frames.add(lambda: shut(getattr(resp.sock, "sock", None)))
                while resp.is_open() and time.monotonic() < deadline:
                    resp.update(timeout=0.5)
                    if resp.peek_stdout():
                        stdout.append(resp.read_stdout())
                    if resp.peek_stderr():
                        stderr.append(resp.read_stderr())
            timed_out = resp.is_open() or frames.expired
            code = resp.returncode
        except Exception as exc:  # the websocket dropped (node gone, API server restart)
            if frames.expired:
                raise KubeError(
                    f"exec in {namespace}/{pod} did not finish in {timeout:g} s"
                ) from None
            raise KubeError(
                f"exec in {namespace}/{pod} was cut off: {type(exc).__name__}"
            ) from None
        finally:
            resp.close()
            api.close()
        if timed_out:
            raise KubeError(f"exec in {namespace}/{pod} did not finish in {timeout:g} s")
        if code is None:
            raise KubeError(f"exec in {namespace}/{pod} ended without an exit status")
        return "".join(stdout), "".join(stderr), int(code)

    async def probe(self, probe: Probe) -> ProbeResult:
        return await self._in_thread(f"probe {probe.describe()}", lambda: self._probe(probe))

    async def probes(self, probes: Sequence[Probe]) -> list[ProbeResult]:
        limit = asyncio.Semaphore(8)

        async def one(probe: Probe) -> ProbeResult:
            async with limit:
                return await self.probe(probe)

        return gathered(await asyncio.gather(*(one(p) for p in probes), return_exceptions=True))

    def predict(self, probe: Probe) -> Any:
        from meshtutor.policy.predict import predict

        return predict(self.cluster, probe)

    def _probe(self, probe: Probe) -> ProbeResult:
        from meshtutor.sandbox.probe import _display_command

        if probe.outside:
            return self._probe_outside(probe)
        prediction = self.predict(probe)
        pod, default_container = self._pod_and_container(
            probe.source_namespace, probe.source_deployment
        )
        args = curl_args(probe)
        args.append(probe.url)
        started = time.perf_counter()
        container = probe.container or default_container
        out, err, code = self._exec(
            probe.source_namespace,
            pod,
            container,
            args,
            probe.effective_timeout + self.request_timeout,
        )
        body_text, http_code = parse_output(out)
        mtls, client_id, server_id = self._observed_mtls(body_text, prediction)
        return ProbeResult(
            probe=probe,
            container=container,
            http_code=http_code,
            exit_code=code,
            stderr=err.strip().splitlines()[-1] if err.strip() else "",
            body=body_text,
            mtls=mtls,
            client_identity=client_id,
            server_identity=server_id,
            prediction=prediction,
            prober="exec",
            duration_ms=(time.perf_counter() - started) * 1000,
            command=_display_command(probe, container),
        )

    # --- outside probes ---------------------------------------------------------------------

    def _probe_outside(self, probe: Probe) -> ProbeResult:
        """curl on this machine, to the external address of the Service the URL leads to
        (``--resolve``/``--connect-to`` stand in for public DNS)."""
        from meshtutor.policy.ingress import outside_service
        from meshtutor.sandbox.probe import resolve_cacert

        prediction = self.predict(probe)  # also validates the probe
        curl = shutil.which("curl")
        if curl is None:
            raise KubeError(
                "outside probes run curl on this machine, and there is no curl on PATH: "
                "install it (apt install curl, brew install curl)"
            )
        url = probe.parsed_url
        args = curl_args(probe, extra=["-q"])  # -q: ignore ~/.curlrc
        # curl -w reads "\n" itself: the command stays one line and is exactly what runs.
        args = [a.replace("\n", "\\n") if a.startswith(MARK) else a for a in args]
        if probe.cacert:
            args += ["--cacert", resolve_cacert(probe.cacert)]
        found = outside_service(self.cluster, url.host, url.port)
        target_url = probe.url
        if found is None:
            # The name leads nowhere into the cluster (the prediction says why). ".invalid"
            # never resolves (RFC 6761): curl fails as it would, without asking real DNS.
            target_url = probe.url.replace(f"//{url.host}", f"//{url.host}.invalid", 1)
            via = "via nothing: the name does not lead into the cluster"
        else:
            route, via = self._outside_route(found[0], found[1], url)
            args += route
        args.append(target_url)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [curl, *args[1:]],
                capture_output=True,
                env=env,
                timeout=probe.effective_timeout + 10,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise KubeError(f"curl did not finish in {probe.effective_timeout + 10:g} s") from None
        elapsed = (time.perf_counter() - started) * 1000
        body, http_code = parse_output(done.stdout.decode("utf-8", "replace"))
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        own = [line for line in lines if line.startswith("curl: (")]
        stderr = own[0] if own else (lines[-1] if lines else "")
        if found is None:
            stderr = stderr.replace(f"{url.host}.invalid", url.host)
        mtls, client_id, server_id = self._observed_mtls(body, prediction)
        return ProbeResult(
            probe=probe,
            container="",
            http_code=http_code,
            exit_code=done.returncode,
            stderr=stderr,
            body=body,
            mtls=mtls,
            client_identity=client_id,
            server_identity=server_id,
            prediction=prediction,
            prober="curl",
            duration_ms=elapsed,
            command=f"{shlex.join(args)}  # {via}",
        )

    def _outside_route(self, service: Any, svc_port: Any, url: Any) -> tuple[list[str], str]:
        """curl options that send ``url`` to the Service's external address, and how:
        the load balancer address, else a node's InternalIP with the node port."""
        ns, name = service.namespace, service.name
        obj = self._read("v1", "Service", name, ns)
        if obj is None:
            raise ClusterStateError(f"Service {ns}/{name} is gone from the cluster")
        spec = _dict(obj.get("spec"))
        ports = _list_of_dicts(spec.get("ports"))
        port: dict[str, Any] = next(
            (p for p in ports if p.get("port") == svc_port.port and p.get("name") == svc_port.name),
            next((p for p in ports if p.get("port") == svc_port.port), {}),
        )
        ingress = _list_of_dicts(_dict(_dict(obj.get("status")).get("loadBalancer")).get("ingress"))
        if spec.get("type") == "LoadBalancer" and ingress and url.port == port.get("port"):
            address = ingress[0].get("ip")
            if address:
                return ["--resolve", f"{url.host}:{url.port}:{_bracket(address)}"], (
                    f"via LoadBalancer {address}"
                )
            hostname = ingress[0].get("hostname")
            if hostname:
                return ["--connect-to", f"{url.host}:{url.port}:{hostname}:{url.port}"], (
                    f"via LoadBalancer {hostname}"
                )
        node_port = port.get("nodePort")
        node = self._node_address() if node_port else None
        if node_port and node:
            if node_port == url.port:
                route = ["--resolve", f"{url.host}:{url.port}:{_bracket(node)}"]
            else:
                route = ["--connect-to", f"{url.host}:{url.port}:{_bracket(node)}:{node_port}"]
            return route, f"via node {node}:{node_port}"
        local = 8080
        raise ProbeSpecError(
            f"Service {ns}/{name} has no external address ({spec.get('type')}, no load "
            "balancer address and no node port on a node meshtutor can see): start "
            f"`kubectl port-forward -n {ns} svc/{name} {local}:{port.get('port', url.port)}` "
            f"and try `curl -H 'Host: {url.authority}' "
            f"{url.scheme}://127.0.0.1:{local}{url.path_with_query}` yourself"
        )

    def _node_address(self) -> str | None:
        """The first node's InternalIP (else any address it lists), or None."""
        nodes = self._list(self._resource("v1", "Node"), "nodes", forbidden_ok=True)
        if nodes is None:
            return None  # not allowed to list nodes: no node address to use
        for node in sorted(nodes, key=lambda n: str(_meta(n)["name"]))[:1]:
            addresses = _list_of_dicts(_dict(node.get("status")).get("addresses"))
            internal = [a.get("address") for a in addresses if a.get("type") == "InternalIP"]
            others = [a.get("address") for a in addresses if a.get("type") == "ExternalIP"]
            found = [a for a in internal + others if isinstance(a, str) and a]
            if found:
                return found[0]
        return None

    @staticmethod
    def _observed_mtls(body: str, prediction: Any) -> tuple[bool, str | None, str | None]:
        """A real cluster does not tell curl whether the hop was mutual TLS. When the app echoes
        request headers (httpbin /headers), XFCC or l5d-client-id prove it; otherwise meshtutor
        reports the prediction, clearly as such."""
        xfcc = re.search(r"URI=(spiffe://[^;\"\],]+)", body)
        if xfcc:
            by = re.search(r"By=(spiffe://[^;\"\],]+)", body)
            return True, xfcc.group(1), by.group(1) if by else None
        l5d = re.search(r'"[Ll]5d-[Cc]lient-[Ii]d":\s*\[?"([^"]+)"', body)
        if l5d:
            return True, l5d.group(1), prediction.server_identity
        return prediction.mtls, prediction.client_identity, prediction.server_identity

    async def certificate(self, namespace: str, name: str) -> Any:
        return await self._in_thread(
            f"read the certificates of {namespace}/{name}",
            lambda: self._certificate(namespace, name),
        )

    def _certificate(self, namespace: str, name: str) -> Any:
        """The chain the workload's proxy holds, read from the proxy itself."""
        from meshtutor.pki import describe_chain, load_envoy_secrets

        pod = self._pod_for(namespace, name)
        if self.mesh == "linkerd":
            raise KubeError(
                "the linkerd-proxy image has no shell to read its certificate from; "
                f"use `linkerd identity -n {namespace} {pod}`"
            )
        out, err, code = self._exec(
            namespace,
            pod,
            "istio-proxy",
            ["pilot-agent", "request", "GET", "config_dump?resource=dynamic_active_secrets"],
            self.request_timeout,
        )
        if code:
            raise KubeError(f"reading certificates from {namespace}/{pod} failed: {err.strip()}")
        secrets = load_envoy_secrets(out, source=f"{namespace}/{pod} istio-proxy")
        from datetime import UTC, datetime

        from meshtutor.pki.inspection import CredentialInfo

        chain = describe_chain(secrets.chain, at=datetime.now(UTC), roots=secrets.roots)
        leaf = chain.certificates[0]
        # Istio renews at half the lifetime (SECRET_GRACE_PERIOD_RATIO 0.5).
        return CredentialInfo(
            workload=f"{namespace}/{name}",
            identity=leaf.identity or "?",
            mesh="istio",
            chain=chain,
            rotations=0,
            rotated_at=None,
            renew_at=leaf.not_before + leaf.lifetime / 2,
            rotation_due=False,
            rotation_error=None,
        )

    async def advance_clock(self, delta: Any) -> int:
        raise KubeError("a real cluster's clock cannot be fast-forwarded; use the sandbox")

    async def table(self, kind: str) -> tuple[list[str], list[list[str]]]:
        from meshtutor.backends.sandbox import resource_table

        return resource_table(await asyncio.to_thread(lambda: self.cluster), kind)

    async def mtls_status(self) -> tuple[list[str], list[list[str]]]:
        from meshtutor.backends.sandbox import mtls_status_table

        return mtls_status_table(await asyncio.to_thread(lambda: self.cluster))


def _bracket(address: str) -> str:
    """An IPv6 address in brackets, as curl's --resolve and --connect-to want it."""
    return f"[{address}]" if ":" in address else address


def describe_service_address(service: dict[str, Any]) -> str:
    """How a Service is reached, from its API object: ``LoadBalancer 172.18.255.200``,
    ``NodePort (node ports 31080, 31443)``, ``ClusterIP 10.96.0.10``."""
    spec, status = _dict(service.get("spec")), _dict(service.get("status"))
    kind = spec.get("type") or "ClusterIP"
    ingress = _list_of_dicts(_dict(status.get("loadBalancer")).get("ingress"))
    node_ports = ", ".join(
        str(p["nodePort"]) for p in _list_of_dicts(spec.get("ports")) if p.get("nodePort")
    )
    if kind == "LoadBalancer" and ingress:
        return f"LoadBalancer {ingress[0].get('ip') or ingress[0].get('hostname')}"
    if kind == "LoadBalancer":
        pending = "LoadBalancer, no load balancer address yet"
        return f"{pending} (node ports {node_ports})" if node_ports else pending
    if kind == "NodePort":
        return f"NodePort (node ports {node_ports})" if node_ports else "NodePort"
    return f"{kind} {spec.get('clusterIP') or ''}".strip()


def new_probe_id() -> str:
    return uuid.uuid4().hex[:12]
