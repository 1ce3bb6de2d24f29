"""Is a kubeconfig context a cluster on this machine? Decided on the API server's address, never
on a name alone: meshtutor creates and deletes objects, and a context called ``kind-prod`` can
point anywhere.

A server is local when its address is

- loopback (``127.0.0.0/8``, ``::1``, ``localhost``): what kind (``https://127.0.0.1:PORT``, its
  default ``networking.apiServerAddress``), minikube on macOS and Windows, Rancher Desktop and
  OrbStack write;
- unspecified (``0.0.0.0``, ``::``), which as a destination means this host: k3d writes
  ``https://0.0.0.0:PORT`` (``DefaultAPIHost`` in k3d's ``pkg/types``, used by
  ``KubeconfigGet`` in ``pkg/client/kubeconfig.go``);
- one of Docker's names for this machine, ``kubernetes.docker.internal`` (Docker Desktop's
  context) and ``host.docker.internal`` (k3d on Docker Desktop, k3d-io/k3d#876);
- or a private address in the range the tool that made the cluster puts its nodes in, when the
  context or cluster name (or minikube's ``cluster_info`` extension) says which tool that was:
  kind and k3d nodes sit on a Docker bridge network, which Docker allocates from its default
  pools ``172.17.0.0/16``–``172.31.0.0/16`` (moby ``libnetwork/ipamutils/utils.go``,
  ``localScopeDefaultNetworks``; kind's IPv6 subnet is a ULA ``fc00::/16`` hashed from the
  network name, ``generateULASubnetFromName`` in kind's
  ``pkg/cluster/internal/providers/docker/network.go``); minikube's node networks start at
  ``192.168.49.0/24`` (docker and podman drivers, ``firstSubnetAddr`` in
  ``pkg/drivers/kic/oci/network_create.go``) and ``192.168.39.0/24`` (kvm2,
  ``pkg/drivers/kvm/network.go``) and step upwards, so ``192.168.39.0``–``192.168.255.255``.

A public address is never local, whatever the context is called.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Private networks (RFC 1918, RFC 4193). Python's ``is_private`` also counts documentation and
#: benchmarking ranges, which no local cluster uses.
PRIVATE_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("fc00::/7"),
)
#: Docker's default address pools for bridge networks, in the order it allocates them.
DOCKER_BRIDGE_POOLS: tuple[Network, ...] = (
    ipaddress.ip_network("172.17.0.0/16"),
    ipaddress.ip_network("172.18.0.0/15"),
    ipaddress.ip_network("172.20.0.0/14"),
    ipaddress.ip_network("172.24.0.0/13"),
)
KIND_IPV6: Network = ipaddress.ip_network("fc00::/16")
MINIKUBE_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.summarize_address_range(
        ipaddress.IPv4Address("192.168.39.0"), ipaddress.IPv4Address("192.168.255.255")
    )
)
#: Host names Docker reserves for this machine (not resolvable on any public resolver).
DOCKER_HOST_NAMES = ("kubernetes.docker.internal", "host.docker.internal")
MINIKUBE_PROVIDER = "minikube.sigs.k8s.io"


@dataclass(frozen=True)
class LocalTool:
    """A tool that makes clusters on this machine: how it names them, where it puts them."""

    name: str
    prefixes: tuple[str, ...]
    networks: tuple[Network, ...]
    ranges: str  # the networks as a reader should see them

    def made(self, names: Sequence[str], provider: str = "") -> bool:
        if self.name == "minikube" and provider == MINIKUBE_PROVIDER:
            return True
        return any(n.startswith(self.prefixes) for n in names if n)


LOCAL_TOOLS = (
    LocalTool(
        "kind",
        ("kind-",),
        (*DOCKER_BRIDGE_POOLS, KIND_IPV6),
        "Docker bridge networks 172.17.0.0–172.31.255.255 and fc00::/16",
    ),
    LocalTool(
        "k3d", ("k3d-",), DOCKER_BRIDGE_POOLS, "Docker bridge networks 172.17.0.0–172.31.255.255"
    ),
    LocalTool("minikube", ("minikube",), MINIKUBE_NETWORKS, "192.168.39.0–192.168.255.255"),
)


def locality_problem(
    context: str, server: str, *, cluster: str = "", provider: str = ""
) -> str | None:
    """Why ``server`` is not a cluster on this machine, or None when it is (see the module
    docstring). ``cluster`` is the kubeconfig's cluster entry name, ``provider`` the provider
    its extensions name (minikube writes ``minikube.sigs.k8s.io``)."""
    try:
        host = urlsplit(server).hostname or ""
    except ValueError:
        return f"the server {server!r} is not a URL"
    if not host:
        return "the cluster entry has no server address"
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost") or host in DOCKER_HOST_NAMES:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address is None:
        return (
            f"{host} is a host name, and meshtutor decides on addresses: a local cluster's "
            "server is 127.0.0.1, localhost or its container's address"
        )
    if address.is_loopback or address.is_unspecified:
        return None
    if not any(address in network for network in PRIVATE_NETWORKS):
        return f"{address} is not a private address"
    tools = [t for t in LOCAL_TOOLS if t.made((context, cluster), provider)]
    if not tools:
        return (
            f"{address} is not on this machine's loopback, and neither the context nor the "
            "cluster name says that kind, k3d or minikube made it"
        )
    for tool in tools:
        if any(address in network for network in tool.networks):
            return None
    tool = tools[0]
    return f"{address} is outside the addresses {tool.name} gives its nodes ({tool.ranges})"


def is_local(context: str, server: str, *, cluster: str = "", provider: str = "") -> bool:
    return locality_problem(context, server, cluster=cluster, provider=provider) is None
