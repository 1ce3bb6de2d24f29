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
  ``pkg/drivers/kvm/network.go``) and step upwards, so ``192.168.39.0``–``192.168.255.255``;
  and, since those ranges are also those of home networks, offices and VPNs, only when this
  machine reaches the address directly through a container or VM bridge interface (``docker0``,
  ``br-…``, ``podman…``, ``cni…``, ``virbr…``, ``vboxnet…``, …; read from ``/proc/net/route``
  and ``/proc/net/ipv6_route``), which is where those tools put their nodes. That is Linux
  only: on macOS and Windows, kind, k3d and minikube's docker driver publish the API server on
  127.0.0.1 (kind's default ``networking.apiServerAddress``, ``SetDefaultsCluster`` in
  ``pkg/internal/apis/config/default.go``; minikube's ``NeedsPortForward`` in
  ``pkg/minikube/driver/driver.go``), so a container address is never a local cluster there.

A public address is never local, whatever the context is called.
"""

from __future__ import annotations

import ipaddress
import re
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class Route:
    """A network this machine reaches directly (no gateway), and the interface it is on."""

    network: Network
    interface: str


#: The interfaces of container and VM networks: Docker's default bridge and its user networks
#: (``br-`` and the network id), Podman, CNI, nerdctl, libvirt (minikube's kvm2), VirtualBox
#: host-only networks, VMware, LXD and Incus.
BRIDGE_INTERFACE = re.compile(
    r"(docker\d+|br-[0-9a-f]{6,}|podman\d+|cni[-\w]*|nerdctl\d+|virbr\d+|vboxnet\d+|vmnet\d+"
    r"|lxdbr\d+|incusbr\d+)"
)
BRIDGES = "docker0, br-…, podman…, cni…, virbr…, vboxnet…"


def parse_routes(ipv4: str, ipv6: str) -> list[Route]:
    """The directly attached networks of a Linux routing table, as ``/proc/net/route`` and
    ``/proc/net/ipv6_route`` write it (addresses in hex, IPv4 little-endian; a route with a
    gateway is not directly attached). Lines that do not parse are skipped."""
    routes: list[Route] = []
    for line in ipv4.splitlines()[1:]:
        fields = line.split()
        try:
            iface, dest, gateway, flags, mask = (
                fields[0],
                fields[1],
                fields[2],
                fields[3],
                fields[7],
            )
            if int(gateway, 16) or not int(flags, 16) & 1:  # via a gateway, or not up
                continue
            address = ipaddress.IPv4Address(struct.pack("<I", int(dest, 16)))
            netmask = ipaddress.IPv4Address(struct.pack("<I", int(mask, 16)))
            network: Network = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
        except (IndexError, ValueError, struct.error):
            continue
        if network.prefixlen:
            routes.append(Route(network, iface))
    for line in ipv6.splitlines():
        fields = line.split()
        try:
            dest, length, nexthop, flags, iface = (
                fields[0],
                fields[1],
                fields[4],
                fields[8],
                fields[9],
            )
            if int(nexthop, 16) or not int(flags, 16) & 1:
                continue
            network = ipaddress.IPv6Network((int(dest, 16), int(length, 16)), strict=False)
        except (IndexError, ValueError):
            continue
        if network.prefixlen and not network.is_link_local:
            routes.append(Route(network, iface))
    return routes


def machine_routes() -> list[Route]:
    """This machine's directly attached networks (Linux; empty elsewhere)."""

    def read(path: str) -> str:
        try:
            return Path(path).read_text(encoding="ascii", errors="replace")[:1_000_000]
        except OSError:
            return ""

    return parse_routes(read("/proc/net/route"), read("/proc/net/ipv6_route"))


def _bridge_problem(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    tool: LocalTool,
    routes: Sequence[Route] | None,
    platform: str,
) -> str | None:
    """Why ``address`` is not on a container or VM bridge of this machine, or None."""
    if platform != "linux":
        system = {"darwin": "macOS", "win32": "Windows"}.get(platform, platform)
        return (
            f"{address} is a container or VM address, and on {system} kind, k3d and minikube's "
            "docker driver publish the API server on 127.0.0.1, where a local cluster's "
            "kubeconfig points"
        )
    if routes is None:
        routes = machine_routes()
    matching = [r for r in routes if address in r.network]
    if not matching:
        return (
            f"{address} is not on a network directly attached to this machine, and {tool.name} "
            f"puts its nodes on a container or VM bridge of this machine ({BRIDGES})"
        )
    route = max(matching, key=lambda r: r.network.prefixlen)  # the kernel's choice
    if BRIDGE_INTERFACE.fullmatch(route.interface):
        return None
    return (
        f"{address} is on {route.interface}'s network ({route.network}), not on a container or "
        f"VM bridge of this machine ({BRIDGES}) where {tool.name} puts its nodes: an address on "
        "a home, office or VPN network is another machine"
    )


def locality_problem(
    context: str,
    server: str,
    *,
    cluster: str = "",
    provider: str = "",
    routes: Sequence[Route] | None = None,
    platform: str = sys.platform,
) -> str | None:
    """Why ``server`` is not a cluster on this machine, or None when it is (see the module
    docstring). ``cluster`` is the kubeconfig's cluster entry name, ``provider`` the provider
    its extensions name (minikube writes ``minikube.sigs.k8s.io``); ``routes`` this machine's
    directly attached networks (read from the kernel when needed, if not given) and
    ``platform`` its ``sys.platform``."""
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
            return _bridge_problem(address, tool, routes, platform)
    tool = tools[0]
    return f"{address} is outside the addresses {tool.name} gives its nodes ({tool.ranges})"


def is_local(context: str, server: str, *, cluster: str = "", provider: str = "") -> bool:
    return locality_problem(context, server, cluster=cluster, provider=provider) is None
