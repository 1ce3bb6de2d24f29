"""Which kubeconfig contexts meshtutor treats as a cluster on this machine: decided on the
server's address; a name alone (``kind-prod``) never makes a remote server local.

The addresses the tools really write are cited in ``meshtutor/backends/locality.py``: kind
``https://127.0.0.1:PORT`` (its container's 172.x address on the ``kind`` network when a user
points the kubeconfig there), minikube ``https://192.168.49.2:8443`` with the docker driver and
``192.168.39.x`` with kvm2, k3d ``https://0.0.0.0:PORT`` or ``host.docker.internal``, Docker
Desktop ``https://kubernetes.docker.internal:6443``.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest
from kube_helpers import run_meshtutor, write_kubeconfig

from meshtutor.backends.kubeclient import KubeError, Target, check_local, resolve_target
from meshtutor.backends.locality import Route, locality_problem, parse_routes

#: A Linux laptop: the default Docker bridge, kind's network, a k3d network, minikube's docker
#: network and its kvm2 libvirt network on bridges; the home LAN on Wi-Fi, a corporate VPN.
LAPTOP = [
    Route(ip_network("172.17.0.0/16"), "docker0"),
    Route(ip_network("172.18.0.0/16"), "br-3c9f2d6e8a41"),  # docker network "kind"
    Route(ip_network("fc00:f853:ccd:e793::/64"), "br-3c9f2d6e8a41"),
    Route(ip_network("172.19.0.0/16"), "br-77e0a1b2c3d4"),  # docker network "k3d-dev"
    Route(ip_network("192.168.49.0/24"), "br-0a1b2c3d4e5f"),  # docker network "minikube"
    Route(ip_network("192.168.58.0/24"), "br-5f4e3d2c1b0a"),
    Route(ip_network("192.168.67.0/24"), "br-1234567890ab"),
    Route(ip_network("192.168.39.0/24"), "virbr1"),  # libvirt network "mk-minikube"
    Route(ip_network("192.168.100.0/24"), "wlp2s0"),  # the home LAN
    Route(ip_network("172.20.0.0/14"), "tun0"),  # the company VPN
    Route(ip_network("10.0.0.0/8"), "tun0"),
]

# context, cluster entry, server, local?, what the refusal says
CASES = [
    # Loopback and "this host", whatever the name.
    ("kind-meshtutor", "kind-meshtutor", "https://127.0.0.1:39917", True, ""),
    ("anything", "anything", "https://127.0.0.1:6443", True, ""),
    ("rancher-desktop", "rancher-desktop", "https://127.0.0.1:6443", True, ""),
    ("orbstack", "orbstack", "https://127.0.0.1:26443", True, ""),
    ("my-lab", "my-lab", "https://127.42.0.7:6443", True, ""),
    ("my-lab", "my-lab", "https://[::1]:6443", True, ""),
    ("my-lab", "my-lab", "https://[::ffff:127.0.0.1]:6443", True, ""),
    ("my-lab", "my-lab", "https://localhost:6443", True, ""),
    ("my-lab", "my-lab", "https://LOCALHOST.:6443", True, ""),
    ("my-lab", "my-lab", "https://api.localhost:6443", True, ""),
    ("k3d-dev", "k3d-dev", "https://0.0.0.0:41827", True, ""),
    ("k3d-dev", "k3d-dev", "https://host.docker.internal:6555", True, ""),
    ("docker-desktop", "docker-desktop", "https://kubernetes.docker.internal:6443", True, ""),
    # A tool's container address, when the name says which tool made the cluster.
    ("kind-meshtutor", "kind-meshtutor", "https://172.18.0.2:6443", True, ""),
    ("kind-v6", "kind-v6", "https://[fc00:f853:ccd:e793::2]:6443", True, ""),
    ("k3d-dev", "k3d-dev", "https://172.19.0.3:6443", True, ""),
    ("minikube", "minikube", "https://192.168.49.2:8443", True, ""),
    ("minikube", "minikube", "https://192.168.58.2:8443", True, ""),
    ("minikube", "minikube", "https://192.168.39.117:8443", True, ""),
    ("minikube-2", "minikube-2", "https://192.168.67.2:8443", True, ""),
    ("work", "kind-meshtutor", "https://172.18.0.2:6443", True, ""),  # renamed context
    # A name alone never makes a remote server local.
    ("kind-prod", "kind-prod", "https://203.0.113.5:6443", False, "not a private address"),
    ("kind-prod", "kind-prod", "https://k8s.example.com:6443", False, "is a host name"),
    ("minikube", "minikube", "https://8.8.8.8:8443", False, "not a private address"),
    ("k3d-x", "k3d-x", "https://[2001:db8::1]:6443", False, "not a private address"),
    ("kind-x", "kind-x", "https://169.254.1.1:6443", False, "not a private address"),
    ("kind-prod", "kind-prod", "https://100.64.0.7:6443", False, "not a private address"),
    # A private address needs the tool's name and the tool's range.
    ("prod-eu", "prod-eu", "https://10.0.0.5:6443", False, "neither the context nor"),
    ("prod-eu", "prod-eu", "https://172.18.0.2:6443", False, "neither the context nor"),
    ("kind-prod", "kind-prod", "https://10.0.0.5:6443", False, "outside the addresses kind"),
    ("kind-prod", "kind-prod", "https://172.16.0.9:6443", False, "outside the addresses kind"),
    ("kind-home", "kind-home", "https://192.168.1.20:6443", False, "outside the addresses kind"),
    ("minikube", "minikube", "https://192.168.1.20:8443", False, "outside the addresses minikube"),
    ("minikube", "minikube", "https://172.18.0.2:8443", False, "outside the addresses minikube"),
    ("k3d-x", "k3d-x", "https://[fc00::2]:6443", False, "outside the addresses k3d"),
    # The tool's name and range, and yet not this machine's: a LAN, a VPN, another machine's
    # Docker network (issue 13: the name alone was trusted for large private ranges).
    ("kind-prod", "kind-prod", "https://172.20.1.10:6443", False, "on tun0's network"),
    ("minikube", "minikube", "https://192.168.100.7:8443", False, "on wlp2s0's network"),
    ("kind-meshtutor", "kind-meshtutor", "https://172.31.0.4:6443", False, "not on a network"),
    ("minikube", "minikube", "https://192.168.77.2:8443", False, "not on a network"),
    # No server, no URL.
    ("kind-x", "kind-x", "", False, "no server address"),
    ("kind-x", "kind-x", "https://[::1:6443", False, "not a URL"),
]


@pytest.mark.parametrize("context, cluster, server, local, why", CASES)
def test_locality_is_decided_on_the_address(
    context: str, cluster: str, server: str, local: bool, why: str
) -> None:
    problem = locality_problem(context, server, cluster=cluster, routes=LAPTOP, platform="linux")
    assert (problem is None) == local, problem
    if not local:
        assert problem is not None and why in problem


def test_minikube_is_known_by_its_kubeconfig_extension_too() -> None:
    """minikube names the context after the profile (``-p lab``), and writes a
    ``cluster_info`` extension with ``provider: minikube.sigs.k8s.io``."""
    assert locality_problem("lab", "https://192.168.49.2:8443", routes=LAPTOP) is not None
    assert (
        locality_problem(
            "lab",
            "https://192.168.49.2:8443",
            provider="minikube.sigs.k8s.io",
            routes=LAPTOP,
            platform="linux",
        )
        is None
    )


def test_the_refusal_names_context_server_reason_and_the_way_out() -> None:
    target = Target("kind-prod", "https://203.0.113.5:6443", "/k", "kind-prod")
    with pytest.raises(KubeError) as caught:
        check_local(target, allow_remote=False)
    message = str(caught.value)
    assert message == (
        "context 'kind-prod' (server https://203.0.113.5:6443) is not a cluster on this machine: "
        "203.0.113.5 is not a private address. meshtutor creates and deletes objects, so it "
        "only uses local clusters; pass --allow-remote if you really mean this one"
    )
    check_local(target, allow_remote=True)  # the user said so


MINIKUBE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /home/u/.minikube/ca.crt
    extensions:
    - extension:
        last-update: Fri, 07 Feb 2025 16:53:20 CET
        provider: minikube.sigs.k8s.io
        version: v1.35.0
      name: cluster_info
    server: https://192.168.49.2:8443
  name: lab
contexts:
- context:
    cluster: lab
    user: lab
  name: lab
current-context: lab
users:
- name: lab
  user: {token: abc}
"""


def test_resolve_target_reads_the_cluster_entry_and_its_provider(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(MINIKUBE_KUBECONFIG)
    target = resolve_target(str(config))
    assert (target.context, target.cluster, target.server, target.provider) == (
        "lab",
        "lab",
        "https://192.168.49.2:8443",
        "minikube.sigs.k8s.io",
    )
    assert target.locality_problem(routes=LAPTOP, platform="linux") is None


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_on_macos_and_windows_a_container_address_is_never_local(platform: str) -> None:
    """There, kind, k3d and minikube's docker driver publish the API server on 127.0.0.1
    (minikube: ``NeedsPortForward`` in pkg/minikube/driver/driver.go): a 172.18.x server is
    not the container of a local cluster."""
    problem = locality_problem(
        "kind-meshtutor", "https://172.18.0.2:6443", routes=LAPTOP, platform=platform
    )
    assert problem is not None and "publish the API server on 127.0.0.1" in problem
    assert locality_problem("kind-meshtutor", "https://127.0.0.1:6443", platform=platform) is None


PROC_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlp2s0\t00000000\t0164A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-3c9f2d6e8a41\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
wlp2s0\t0064A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
tun0\t000014AC\t0100140A\t0003\t0\t0\t50\t0000FCFF\t0\t0\t0
"""
PROC_IPV6_ROUTE = """\
fc00f8530ccde7930000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 br-3c9f2d6e8a41
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
"""


def test_the_route_table_is_read_as_the_kernel_writes_it() -> None:
    """/proc/net/route (little-endian hex, a gateway means not directly attached) and
    /proc/net/ipv6_route."""
    assert parse_routes(PROC_ROUTE, PROC_IPV6_ROUTE) == [
        Route(ip_network("172.17.0.0/16"), "docker0"),
        Route(ip_network("172.18.0.0/16"), "br-3c9f2d6e8a41"),
        Route(ip_network("192.168.100.0/24"), "wlp2s0"),
        Route(ip_network("fc00:f853:ccd:e793::/64"), "br-3c9f2d6e8a41"),
    ]
    assert parse_routes("garbage\nmore garbage here\n", "x y\n") == []


@pytest.mark.parametrize("command", [["run", "4", "--dry-run"], ["doctor"]])
def test_a_remote_kind_named_context_is_refused_by_the_commands(
    tmp_path: Path, command: list[str]
) -> None:
    """Before: ``kind-prod`` was accepted because of its name, and meshtutor went on to talk to
    the server (here a documentation address nobody answers on)."""
    config = write_kubeconfig(tmp_path / "config", "https://203.0.113.5:6443", name="kind-prod")
    out = run_meshtutor(*command, "--kubeconfig", str(config), home=tmp_path / "home", timeout=60)
    assert "Traceback" not in out.stderr
    said = out.stderr if command[0] == "run" else out.stdout
    assert "context 'kind-prod' (server https://203.0.113.5:6443) is not a cluster on" in said
    assert "203.0.113.5 is not a private address" in said
    assert "--allow-remote" in said
    assert out.returncode == (2 if command[0] == "run" else 1)
