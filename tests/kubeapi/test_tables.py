"""What `kubectl get` prints against the sandbox's API: the server-side Table cells.

The expected cells come from the upstream sources the printers are ported from, cited per
test: kubernetes pkg/printers/internalversion/printers.go (and its printers_test.go cases),
k8s.io/apimachinery pkg/util/duration (duration_test.go), apiextensions-apiserver's
tableconvertor for CRDs, and the CRDs' additionalPrinterColumns of Istio 1.26,
Linkerd edge-26.8.3 and Gateway API v1.3.0.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshtutor.kubeapi.tables import human_duration, known, to_table

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def ts(ago: timedelta, *, now: datetime = NOW) -> str:
    return (now - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(group: str, plural: str, obj: dict[str, Any], **kw: Any) -> list[Any]:
    table = to_table(group, plural, [obj], NOW, **kw)
    assert table is not None
    return table["rows"][0]["cells"]


def headers(group: str, plural: str, objs: list[dict[str, Any]] | None = None) -> list[str]:
    table = to_table(group, plural, objs or [], NOW)
    assert table is not None
    return [c["name"] for c in table["columnDefinitions"]]


# --- AGE --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "want"),
    [
        # k8s.io/apimachinery pkg/util/duration/duration_test.go TestHumanDurationBoundaries
        # (Go's 1ns steps become Python's 1µs)
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=-2, microseconds=1), "0s"),
        (timedelta(0), "0s"),
        (timedelta(milliseconds=999), "0s"),
        (timedelta(minutes=2, milliseconds=-1), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=2, seconds=1), "2m1s"),
        (timedelta(minutes=2, seconds=3), "2m3s"),
        (timedelta(minutes=10, milliseconds=-1), "9m59s"),
        (timedelta(minutes=10), "10m"),
        (timedelta(minutes=10, seconds=1), "10m"),
        (timedelta(hours=3, milliseconds=-1), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=1), "3h1m"),
        (timedelta(hours=3, minutes=5), "3h5m"),
        (timedelta(hours=8, milliseconds=-1), "7h59m"),
        (timedelta(hours=8), "8h"),
        (timedelta(hours=8, minutes=59), "8h"),
        (timedelta(days=2, milliseconds=-1), "47h"),
        (timedelta(days=2), "2d"),
        (timedelta(days=2, hours=1), "2d1h"),
        (timedelta(days=2, hours=3), "2d3h"),
        (timedelta(days=8, milliseconds=-1), "7d23h"),
        (timedelta(days=8), "8d"),
        (timedelta(days=8, hours=23), "8d"),
        (timedelta(days=45), "45d"),
        (timedelta(days=2 * 365, milliseconds=-1), "729d"),
        (timedelta(days=2 * 365), "2y"),
        (timedelta(days=2 * 365, hours=23, minutes=59), "2y"),
        (timedelta(days=2 * 365 + 1), "2y1d"),
        (timedelta(days=2 * 365 + 100), "2y100d"),
        (timedelta(days=8 * 365, milliseconds=-1), "7y364d"),
        (timedelta(days=8 * 365), "8y"),
        (timedelta(days=8 * 365 + 364), "8y"),
        (timedelta(days=9 * 365), "9y"),
        # TestHumanDuration
        (timedelta(seconds=70), "70s"),
        (timedelta(seconds=190), "3m10s"),
        (timedelta(minutes=70), "70m"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=49), "2d1h"),
        (timedelta(hours=8 * 24 + 2), "8d"),
        (timedelta(days=367), "367d"),
        (timedelta(hours=365 * 2 * 24 + 25), "2y1d"),
        (timedelta(hours=365 * 8 * 24 + 2), "8y"),
    ],
)
def test_age_reads_as_kubectl_prints_it(delta: timedelta, want: str) -> None:
    assert human_duration(delta) == want
    # and through a real row: the AGE cell of a namespace created `delta` ago
    ns = {
        "metadata": {"name": "demo", "creationTimestamp": (NOW - delta).isoformat()},
        "status": {"phase": "Active"},
    }
    assert cells("", "namespaces", ns)[2] == want


@pytest.mark.parametrize(
    ("created", "want"),
    [
        (None, "<unknown>"),
        ("", "<unknown>"),
        ("2025-06-01T12:00:01Z", "0s"),  # one second of skew is "now"
        ("2025-06-01T12:00:05Z", "<invalid>"),
        ("2025-06-01T11:59:30.123456789Z", "29s"),  # 29.88s: fractions count, then truncate
        ("2025-06-01T13:55:00+02:00", "5m"),
        ("yesterday", "<invalid>"),
    ],
)
def test_age_of_odd_timestamps(created: str | None, want: str) -> None:
    meta: dict[str, Any] = {"name": "x"}
    if created is not None:
        meta["creationTimestamp"] = created
    assert cells("", "configmaps", {"metadata": meta})[2] == want


# --- pods ---------------------------------------------------------------------------------------


def running_pod(name: str = "httpbin-5f6d7c8b9-x2x4q", **status: Any) -> dict[str, Any]:
    """A pod as the sandbox derives it: the app container plus Istio's injected proxy."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "demo",
            "labels": {"app": "httpbin", "security.istio.io/tlsMode": "istio"},
            "creationTimestamp": ts(timedelta(minutes=5, seconds=3)),
            "resourceVersion": "42",
            "uid": "0d6a3c2e-0000-4000-8000-000000000001",
        },
        "spec": {
            "nodeName": "meshtutor",
            "initContainers": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.26.0"}],
            "containers": [
                {"name": "httpbin", "image": "docker.io/mccutchen/go-httpbin:v2.15.0"},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.26.0"},
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "127.42.0.7",
            "podIPs": [{"ip": "127.42.0.7"}],
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "initContainerStatuses": [
                {
                    "name": "istio-init",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                }
            ],
            "containerStatuses": [
                {
                    "name": "httpbin",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": ts(timedelta(minutes=5))}},
                },
                {
                    "name": "istio-proxy",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": ts(timedelta(minutes=5))}},
                },
            ],
            **status,
        },
    }


def test_pod_with_istio_sidecar_reads_2_of_2_running() -> None:
    table = to_table("", "pods", [running_pod()], NOW, list_meta={"resourceVersion": "57"})
    assert table is not None
    assert [(c["name"], c["priority"]) for c in table["columnDefinitions"]] == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    # RESTARTS is a string column since the "(5m ago)" form (Type "string" upstream)
    assert table["columnDefinitions"][3]["type"] == "string"
    assert table["rows"][0]["cells"] == [
        "httpbin-5f6d7c8b9-x2x4q",
        "2/2",
        "Running",
        "0",
        "5m3s",
        "127.42.0.7",
        "meshtutor",
        "<none>",
        "<none>",
    ]


def test_pod_with_native_sidecar_counts_the_restartable_init_container() -> None:
    """Istio's native sidecars (and Linkerd's) put the proxy among initContainers with
    restartPolicy Always; printPod counts it in READY (KEP-753)."""
    pod = running_pod()
    pod["spec"]["initContainers"] = [
        {"name": "istio-init", "image": "istio/proxyv2"},
        {"name": "istio-proxy", "image": "istio/proxyv2", "restartPolicy": "Always"},
    ]
    pod["spec"]["containers"] = [{"name": "httpbin", "image": "mccutchen/go-httpbin"}]
    pod["status"]["initContainerStatuses"] = [
        {"name": "istio-init", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {
            "name": "istio-proxy",
            "ready": True,
            "started": True,
            "restartCount": 1,
            "state": {"running": {}},
            "lastState": {"terminated": {"finishedAt": ts(timedelta(minutes=4))}},
        },
    ]
    pod["status"]["containerStatuses"] = pod["status"]["containerStatuses"][:1]
    assert cells("", "pods", pod)[1:4] == ["2/2", "Running", "1 (4m ago)"]


def test_pod_restarts_say_when_the_last_restart_was() -> None:
    pod = running_pod()
    proxy = pod["status"]["containerStatuses"][1]
    proxy["restartCount"] = 2
    proxy["lastState"] = {"terminated": {"finishedAt": ts(timedelta(minutes=3, seconds=2))}}
    assert cells("", "pods", pod)[3] == "2 (3m2s ago)"


def test_terminating_pod() -> None:
    pod = running_pod()
    pod["metadata"]["deletionTimestamp"] = ts(timedelta(seconds=-30))
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    assert cells("", "pods", pod)[1:3] == ["2/2", "Terminating"]
    # a pod that already finished keeps its final status while it is deleted
    pod["status"]["phase"] = "Succeeded"
    for cs in pod["status"]["containerStatuses"]:
        cs.update(ready=False, state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    assert cells("", "pods", pod)[1:3] == ["0/2", "Completed"]


@pytest.mark.parametrize(
    ("waiting", "want"),
    [("ContainerCreating", "ContainerCreating"), ("CrashLoopBackOff", "CrashLoopBackOff")],
)
def test_pod_waiting_reason_replaces_the_phase(waiting: str, want: str) -> None:
    pod = running_pod()
    pod["status"]["phase"] = "Pending" if waiting == "ContainerCreating" else "Running"
    for cs in pod["status"]["containerStatuses"]:
        cs.update(ready=False, state={"waiting": {"reason": waiting}})
    assert cells("", "pods", pod)[1:3] == ["0/2", want]


def test_pod_without_ip_or_node_shows_none() -> None:
    pod = running_pod()
    del pod["status"]["podIP"], pod["status"]["podIPs"], pod["spec"]["nodeName"]
    assert cells("", "pods", pod)[5:7] == ["<none>", "<none>"]
    # only status.podIP set: the apiserver's v1 conversion fills podIPs from it
    pod["status"]["podIP"] = "127.42.0.9"
    assert cells("", "pods", pod)[5] == "127.42.0.9"


def _upstream_pod(
    name: str, containers: int, status: dict[str, Any], init: list[dict[str, Any]] | int = 0
) -> dict[str, Any]:
    init_specs = [{"name": f"init{i}"} for i in range(init)] if isinstance(init, int) else init
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": f"c{i}"} for i in range(containers)],
            "initContainers": init_specs,
        },
        "status": status,
    }


_RUNNING = {"running": {}}
_TEN_S = {"terminated": {"finishedAt": ts(timedelta(seconds=10))}}
_SIDECARS = [
    {"name": "restartable-init-1", "restartPolicy": "Always"},
    {"name": "restartable-init-2", "restartPolicy": "Always"},
]


@pytest.mark.parametrize(
    ("pod", "want", "condition"),
    [
        # kubernetes pkg/printers/internalversion/printers_test.go TestPrintPod
        (
            _upstream_pod(
                "test1",
                2,
                {
                    "phase": "podPhase",
                    "containerStatuses": [
                        {"ready": True, "restartCount": 3, "state": _RUNNING},
                        {"restartCount": 3},
                    ],
                },
            ),
            ["test1", "1/2", "podPhase", "6", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test3",
                2,
                {
                    "phase": "podPhase",
                    "containerStatuses": [
                        {
                            "state": {"waiting": {"reason": "ContainerWaitingReason"}},
                            "restartCount": 3,
                        },
                        {
                            "state": {"terminated": {"reason": "ContainerTerminatedReason"}},
                            "restartCount": 3,
                        },
                    ],
                },
            ),
            ["test3", "0/2", "ContainerWaitingReason", "6", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test5",
                2,
                {
                    "reason": "podReason",
                    "phase": "podPhase",
                    "containerStatuses": [
                        {"ready": True, "restartCount": 3, "state": _RUNNING},
                        {"ready": True, "restartCount": 3},
                    ],
                },
            ),
            ["test5", "1/2", "podReason", "6", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test6",
                2,
                {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "ready": True,
                            "restartCount": 3,
                            "state": {"terminated": {"reason": "Completed", "exitCode": 0}},
                        },
                        {"ready": True, "restartCount": 3, "state": _RUNNING},
                    ],
                },
            ),
            ["test6", "1/2", "NotReady", "6", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test7",
                1,
                {
                    "phase": "podPhase",
                    "initContainerStatuses": [
                        {"restartCount": 3, "state": _RUNNING, "lastState": _TEN_S}
                    ],
                    "containerStatuses": [{"state": {"waiting": {}}}],
                },
                init=1,
            ),
            ["test7", "0/1", "Init:0/1", "3 (10s ago)", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test9",
                1,
                {
                    "phase": "podPhase",
                    "initContainerStatuses": [
                        {"state": {"terminated": {}}},
                        {"restartCount": 3, "state": _RUNNING, "lastState": _TEN_S},
                    ],
                    "containerStatuses": [{"state": {"waiting": {}}}],
                },
                init=2,
            ),
            ["test9", "0/1", "Init:1/2", "3 (10s ago)", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test15",
                2,
                {
                    "phase": "podPhase",
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                    ],
                },
            ),
            ["test15", "0/2", "SchedulingGated", "0", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test17",
                1,
                {
                    "phase": "Failed",
                    "containerStatuses": [
                        {"state": {"terminated": {"reason": "Error", "exitCode": 1}}}
                    ],
                },
            ),
            ["test17", "0/1", "Error", "0", "<unknown>"],
            {
                "type": "Completed",
                "status": "True",
                "reason": "Failed",
                "message": "The pod failed.",
            },
        ),
        (
            _upstream_pod(
                "test-signal",
                1,
                {
                    "phase": "Running",
                    "containerStatuses": [{"state": {"terminated": {"signal": 9}}}],
                },
            ),
            ["test-signal", "0/1", "Signal:9", "0", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test-init-exit",
                1,
                {
                    "phase": "Pending",
                    "initContainerStatuses": [{"state": {"terminated": {"exitCode": 2}}}],
                },
                init=1,
            ),
            ["test-init-exit", "0/1", "Init:ExitCode:2", "0", "<unknown>"],
            None,
        ),
        # TestPrintPodWithRestartableInitContainer
        (
            _upstream_pod(
                "test2",
                1,
                {
                    "phase": "Running",
                    "initContainerStatuses": [
                        {
                            "name": "restartable-init-1",
                            "restartCount": 3,
                            "state": _RUNNING,
                            "started": True,
                            "lastState": _TEN_S,
                        },
                        {"name": "restartable-init-2", "state": _RUNNING, "started": True},
                    ],
                    "containerStatuses": [
                        {
                            "ready": True,
                            "restartCount": 4,
                            "state": _RUNNING,
                            "lastState": {"terminated": {"finishedAt": ts(timedelta(seconds=20))}},
                        }
                    ],
                    "conditions": [{"type": "Initialized", "status": "True"}],
                },
                init=_SIDECARS,
            ),
            ["test2", "1/3", "Running", "7 (10s ago)", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test1b",
                1,
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {
                            "name": "restartable-init-1",
                            "restartCount": 3,
                            "state": _RUNNING,
                            "started": True,
                            "lastState": _TEN_S,
                        },
                        {"name": "restartable-init-2", "state": _RUNNING, "started": False},
                    ],
                    "containerStatuses": [{"state": {"waiting": {}}}],
                    "conditions": [{"type": "Initialized", "status": "False"}],
                },
                init=_SIDECARS,
            ),
            ["test1b", "0/3", "Init:1/2", "3 (10s ago)", "<unknown>"],
            None,
        ),
        (
            _upstream_pod(
                "test4",
                1,
                {
                    "phase": "Running",
                    "initContainerStatuses": [
                        {"name": "initinvalid"},
                        {"name": "init1"},
                        {"name": "sidecar1"},
                    ],
                    "containerStatuses": [{"name": "containerinvalid"}, {"name": "container1"}],
                },
                init=[{"name": "init1"}, {"name": "sidecar1", "restartPolicy": "Always"}],
            ),
            ["test4", "0/2", "Init:0/2", "0", "<unknown>"],
            None,
        ),
    ],
    ids=lambda v: v["metadata"]["name"] if isinstance(v, dict) and "metadata" in v else "",
)
def test_pod_status_as_upstream_printers_test(
    pod: dict[str, Any], want: list[str], condition: dict[str, str] | None
) -> None:
    table = to_table("", "pods", [pod], NOW)
    assert table is not None
    row = table["rows"][0]
    assert row["cells"][:5] == want
    assert row.get("conditions") == ([condition] if condition else None)


# --- workloads --------------------------------------------------------------------------------


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "httpbin",
            "namespace": "demo",
            "creationTimestamp": ts(timedelta(hours=5)),
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "httpbin", "version": "v1"}},
            "template": {
                "metadata": {"labels": {"app": "httpbin", "version": "v1"}},
                "spec": {
                    "containers": [
                        {"name": "httpbin", "image": "mccutchen/go-httpbin"},
                        {"name": "sidecar", "image": "curlimages/curl"},
                    ]
                },
            },
        },
        "status": status,
    }


def test_deployment_ready_up_to_date_available() -> None:
    table = to_table(
        "apps",
        "deployments",
        [deployment(readyReplicas=1, updatedReplicas=1, availableReplicas=1)],
        NOW,
    )
    assert table is not None
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]
    assert table["rows"][0]["cells"] == [
        "httpbin",
        "1/1",
        1,  # integers on the wire, as the real server sends them
        1,
        "5h",
        "httpbin,sidecar",
        "mccutchen/go-httpbin,curlimages/curl",
        "app=httpbin,version=v1",
    ]
    # a fresh deployment before its pods are ready; replicas defaults to 1
    fresh = deployment()
    del fresh["spec"]["replicas"]
    assert cells("apps", "deployments", fresh)[1:4] == ["0/1", 0, 0]


def test_replicaset_and_selector_expressions() -> None:
    rs = deployment(replicas=2, readyReplicas=1)
    rs["metadata"]["name"] = "httpbin-5f6d7c8b9"
    rs["spec"]["replicas"] = 2
    rs["spec"]["selector"] = {
        "matchLabels": {"pod-template-hash": "5f6d7c8b9", "app": "httpbin"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert cells("apps", "replicasets", rs) == [
        "httpbin-5f6d7c8b9",
        2,
        2,
        1,
        "5h",
        "httpbin,sidecar",
        "mccutchen/go-httpbin,curlimages/curl",
        # LabelSelectorAsSelector sorts requirements by key and In values
        "app=httpbin,!canary,pod-template-hash=5f6d7c8b9,tier in (api,web)",
    ]


def test_statefulset_and_daemonset() -> None:
    sts = deployment(readyReplicas=2)
    sts["spec"]["replicas"] = 3
    assert cells("apps", "statefulsets", sts)[:3] == ["httpbin", "2/3", "5h"]
    ds = deployment(desiredNumberScheduled=1, currentNumberScheduled=1, numberReady=1)
    assert cells("apps", "daemonsets", ds)[1:8] == [1, 1, 1, 0, 0, "<none>", "5h"]


# --- services and endpoints ---------------------------------------------------------------------


def service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "httpbin",
            "namespace": "demo",
            "creationTimestamp": ts(timedelta(days=45)),
        },
        "spec": spec,
        "status": status or {"loadBalancer": {}},
    }


@pytest.mark.parametrize(
    ("spec", "status", "want"),
    [
        (
            {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ports": [{"name": "http", "port": 8000, "targetPort": 8080, "protocol": "TCP"}],
                "selector": {"app": "httpbin"},
            },
            None,
            ["ClusterIP", "10.96.0.10", "<none>", "8000/TCP", "45d", "app=httpbin"],
        ),
        (  # headless; protocol omitted in the stored object reads as the API default
            {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 9000}]},
            None,
            ["ClusterIP", "None", "<none>", "9000/TCP", "45d", "<none>"],
        ),
        (
            {
                "type": "NodePort",
                "clusterIP": "10.96.1.2",
                "ports": [
                    {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"port": 53, "protocol": "UDP"},
                ],
                "selector": {"istio": "ingressgateway", "app": "istio-ingressgateway"},
            },
            None,
            [
                "NodePort",
                "10.96.1.2",
                "<none>",
                "80:30080/TCP,53/UDP",
                "45d",
                "app=istio-ingressgateway,istio=ingressgateway",
            ],
        ),
        (
            {
                "type": "LoadBalancer",
                "clusterIPs": ["10.96.3.4"],
                "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}],
            },
            None,
            ["LoadBalancer", "10.96.3.4", "<pending>", "443:31443/TCP", "45d", "<none>"],
        ),
        (
            {
                "type": "LoadBalancer",
                "clusterIPs": ["10.96.3.4"],
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
            {"loadBalancer": {"ingress": [{"ip": "172.18.255.1"}, {"hostname": "lb.example.com"}]}},
            ["LoadBalancer", "10.96.3.4", "172.18.255.1,lb.example.com", "80/TCP", "45d", "<none>"],
        ),
        (
            {"type": "ExternalName", "externalName": "httpbin.org"},
            None,
            ["ExternalName", "<none>", "httpbin.org", "<none>", "45d", "<none>"],
        ),
        (
            {
                "type": "ClusterIP",
                "clusterIPs": ["10.96.0.11"],
                "externalIPs": ["192.0.2.10"],
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
            None,
            ["ClusterIP", "10.96.0.11", "192.0.2.10", "80/TCP", "45d", "<none>"],
        ),
    ],
    ids=[
        "clusterip",
        "headless",
        "nodeport",
        "lb-pending",
        "lb-ready",
        "externalname",
        "external-ips",
    ],
)
def test_service_columns(
    spec: dict[str, Any], status: dict[str, Any] | None, want: list[str]
) -> None:
    """printService / getServiceExternalIP / makePortString (printers.go)."""
    assert headers("", "services") == [
        "Name",
        "Type",
        "Cluster-IP",
        "External-IP",
        "Port(s)",
        "Age",
        "Selector",
    ]
    assert cells("", "services", service(spec, status))[1:] == want


def endpoints(subsets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "httpbin", "creationTimestamp": ts(timedelta(minutes=7))},
        "subsets": subsets,
    }


def test_endpoints_show_three_then_more() -> None:
    """formatEndpoints: at most three ip:port, then `+ N more...` counting every pair."""
    addrs = [{"ip": f"127.42.0.{i}"} for i in range(1, 5)]
    two_ports = [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "grpc", "port": 9090}]
    assert cells("", "endpoints", endpoints([{"addresses": addrs, "ports": two_ports}]))[1:] == [
        "127.42.0.1:8080,127.42.0.2:8080,127.42.0.3:8080 + 5 more...",
        "7m",
    ]
    one = [{"addresses": addrs[:2], "ports": two_ports[:1]}]
    assert cells("", "endpoints", endpoints(one))[1] == "127.42.0.1:8080,127.42.0.2:8080"
    assert cells("", "endpoints", endpoints([]))[1] == "<none>"
    headless = [{"addresses": [{"ip": "fd00::1"}]}]
    assert cells("", "endpoints", endpoints(headless))[1] == "fd00::1"
    v6 = [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]
    assert cells("", "endpoints", endpoints(v6))[1] == "[fd00::1]:80"


# --- the other built-in kinds ------------------------------------------------------------------


def test_namespace_status() -> None:
    ns = {
        "metadata": {"name": "demo", "creationTimestamp": ts(timedelta(days=3))},
        "status": {"phase": "Active"},
    }
    assert headers("", "namespaces") == ["Name", "Status", "Age"]
    assert cells("", "namespaces", ns) == ["demo", "Active", "3d"]
    ns["status"]["phase"] = "Terminating"
    ns["metadata"]["deletionTimestamp"] = ts(timedelta(seconds=3))
    assert cells("", "namespaces", ns)[1] == "Terminating"


def test_configmap_secret_serviceaccount_counts() -> None:
    meta = {
        "name": "istio-ca-root-cert",
        "namespace": "demo",
        "creationTimestamp": ts(timedelta(minutes=30)),
    }
    cm = {"metadata": meta, "data": {"root-cert.pem": "..."}, "binaryData": {"blob": "AA=="}}
    assert cells("", "configmaps", cm) == ["istio-ca-root-cert", 2, "30m"]
    secret = {"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert headers("", "secrets") == ["Name", "Type", "Data", "Age"]
    assert cells("", "secrets", secret) == ["istio-ca-root-cert", "kubernetes.io/tls", 2, "30m"]
    assert cells("", "serviceaccounts", {"metadata": meta})[1:] == [0, "30m"]


def test_networkpolicy_pod_selector() -> None:
    np: dict[str, Any] = {
        "metadata": {"name": "deny-all", "creationTimestamp": ts(timedelta(minutes=1))},
        "spec": {"podSelector": {}},
    }
    assert headers("networking.k8s.io", "networkpolicies") == ["Name", "Pod-Selector", "Age"]
    assert cells("networking.k8s.io", "networkpolicies", np) == ["deny-all", "<none>", "60s"]
    np["spec"]["podSelector"] = {"matchLabels": {"app": "httpbin"}}
    assert cells("networking.k8s.io", "networkpolicies", np)[1] == "app=httpbin"
    np["spec"]["podSelector"] = {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}
    assert cells("networking.k8s.io", "networkpolicies", np)[1] == "<error>"


def test_event_row() -> None:
    event = {
        "metadata": {"name": "httpbin-5f6d7c8b9-x2x4q.17d1", "namespace": "demo"},
        "involvedObject": {
            "kind": "Pod",
            "name": "httpbin-5f6d7c8b9-x2x4q",
            "fieldPath": "spec.containers{istio-proxy}",
        },
        "reason": "Started",
        "message": "Started container istio-proxy\n",
        "source": {"component": "kubelet", "host": "meshtutor"},
        "firstTimestamp": ts(timedelta(minutes=5)),
        "lastTimestamp": ts(timedelta(minutes=2)),
        "count": 3,
        "type": "Normal",
    }
    assert headers("", "events") == [
        "Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name",
    ]  # fmt: skip
    assert cells("", "events", event) == [
        "2m",
        "Normal",
        "Started",
        "pod/httpbin-5f6d7c8b9-x2x4q",
        "spec.containers{istio-proxy}",
        "kubelet, meshtutor",
        "Started container istio-proxy",
        "5m",
        3,
        "httpbin-5f6d7c8b9-x2x4q.17d1",
    ]
    # an events.k8s.io-style event: eventTime only, no count, reportingComponent
    new = {
        "metadata": {"name": "e"},
        "eventTime": "2025-06-01T11:59:50.000000Z",
        "reportingComponent": "meshtutor",
    }
    row = cells("", "events", new)
    assert (row[0], row[5], row[7], row[8]) == ("10s", "meshtutor", "10s", 1)


def test_node_and_ingress() -> None:
    node = {
        "metadata": {
            "name": "meshtutor",
            "labels": {"node-role.kubernetes.io/control-plane": ""},
            "creationTimestamp": ts(timedelta(hours=1)),
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1"},
        },
    }
    assert cells("", "nodes", node) == [
        "meshtutor", "Ready", "control-plane", "60m", "v1.33.1", "127.0.0.1", "<none>", "<unknown>", "<unknown>", "<unknown>",
    ]  # fmt: skip
    ingress = {
        "metadata": {"name": "test1", "creationTimestamp": ts(timedelta(days=3650))},
        "spec": {"ingressClassName": "foo", "rules": [{"http": {}}]},
        "status": {
            "loadBalancer": {"ingress": [{"ip": "2.3.4.5", "hostname": "localhost.localdomain"}]}
        },
    }
    # printers_test.go TestPrintIngress
    assert cells("networking.k8s.io", "ingresses", ingress) == [
        "test1",
        "foo",
        "*",
        "2.3.4.5",
        "80",
        "10y",
    ]


# --- custom resources --------------------------------------------------------------------------


def peer_auth(name: str, namespace: str, spec: dict[str, Any], ago: timedelta) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": ts(ago)},
        "spec": spec,
    }


def test_peerauthentication_columns_as_istio_declares_them() -> None:
    """Istio manifests/charts/base/files/crd-all.gen.yaml: Mode (.spec.mtls.mode) and Age;
    a policy without a mode (port-level only) has a null cell, which kubectl prints empty."""
    pas = [
        peer_auth("default", "istio-system", {"mtls": {"mode": "STRICT"}}, timedelta(hours=3, minutes=5)),
        peer_auth("httpbin", "demo", {"selector": {"matchLabels": {"app": "httpbin"}}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}}, timedelta(days=2, hours=3)),
    ]  # fmt: skip
    table = to_table(
        "security.istio.io", "peerauthentications", pas, NOW, list_meta={"resourceVersion": "88"}
    )
    assert table is not None
    assert table["columnDefinitions"] == [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": table["columnDefinitions"][0]["description"],
            "priority": 0,
        },
        {
            "name": "Mode",
            "type": "string",
            "format": "",
            "description": "Defines the mTLS mode used for peer authentication.",
            "priority": 0,
        },
        {
            "name": "Age",
            "type": "date",
            "format": "",
            "description": table["columnDefinitions"][2]["description"],
            "priority": 0,
        },
    ]
    assert table["columnDefinitions"][0]["description"].startswith(
        "Name must be unique within a namespace."
    )
    assert [r["cells"] for r in table["rows"]] == [
        ["default", "STRICT", "3h5m"],
        ["httpbin", None, "2d3h"],
    ]
    # -A reads each row's namespace from the PartialObjectMetadata
    assert [r["object"]["metadata"]["namespace"] for r in table["rows"]] == ["istio-system", "demo"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "88"}


def test_istio_columns_render_lists_as_json() -> None:
    """A string column over a list prints it as JSON (client-go jsonpath PrintResults):
    `kubectl get vs` shows HOSTS ["reviews"]."""
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "metadata": {"name": "bookinfo", "creationTimestamp": ts(timedelta(minutes=12))},
        "spec": {"hosts": ["*"], "gateways": ["bookinfo-gateway"], "http": []},
    }
    assert headers("networking.istio.io", "virtualservices", [vs]) == [
        "Name",
        "Gateways",
        "Hosts",
        "Age",
    ]
    assert cells("networking.istio.io", "virtualservices", vs) == [
        "bookinfo",
        '["bookinfo-gateway"]',
        '["*"]',
        "12m",
    ]
    dr = {
        "metadata": {"name": "httpbin", "creationTimestamp": ts(timedelta(minutes=1))},
        "spec": {"host": "httpbin.demo.svc.cluster.local"},
    }
    assert cells("networking.istio.io", "destinationrules", dr) == [
        "httpbin",
        "httpbin.demo.svc.cluster.local",
        "60s",
    ]
    ap = {
        "metadata": {"name": "deny", "creationTimestamp": ts(timedelta(minutes=1))},
        "spec": {"action": "DENY"},
    }
    assert cells("security.istio.io", "authorizationpolicies", ap) == ["deny", "DENY", "60s"]
    assert cells(
        "security.istio.io",
        "authorizationpolicies",
        {"metadata": {"name": "allow-nothing"}, "spec": {}},
    ) == ["allow-nothing", None, None]
    se = {
        "metadata": {"name": "ext"},
        "spec": {"hosts": ["a<b&c.example"], "location": "MESH_EXTERNAL", "resolution": "DNS"},
    }
    # Go's json.Marshal escapes <, > and &
    assert cells("networking.istio.io", "serviceentries", se)[1:4] == [
        '["a\\u003cb\\u0026c.example"]',
        "MESH_EXTERNAL",
        "DNS",
    ]


def test_crd_without_columns_gets_age() -> None:
    """An Istio Gateway declares no printer columns: the apiserver serves Name + Age
    (serveDefaultColumnsIfEmpty)."""
    gw = {
        "apiVersion": "networking.istio.io/v1",
        "metadata": {"name": "bookinfo-gateway", "creationTimestamp": ts(timedelta(seconds=42))},
    }
    table = to_table("networking.istio.io", "gateways", [gw], NOW)
    assert table is not None
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"),
        ("Age", "date"),
    ]
    assert table["rows"][0]["cells"] == ["bookinfo-gateway", "42s"]


def test_linkerd_server_columns_differ_per_version() -> None:
    """linkerd2 charts/linkerd-crds/templates/policy/server.yaml: v1beta3 adds Access Policy;
    v1beta1 has Port and Protocol and, declaring columns, no Age."""
    server = {
        "apiVersion": "policy.linkerd.io/v1beta3",
        "metadata": {"name": "httpbin-http", "creationTimestamp": ts(timedelta(minutes=3))},
        "spec": {
            "port": 8080,
            "proxyProtocol": "HTTP/1",
            "accessPolicy": "deny",
            "podSelector": {},
        },
    }
    assert headers("policy.linkerd.io", "servers", [server]) == [
        "Name",
        "Port",
        "Protocol",
        "Access Policy",
    ]
    assert cells("policy.linkerd.io", "servers", server) == [
        "httpbin-http",
        "8080",
        "HTTP/1",
        "deny",
    ]
    assert headers(
        "policy.linkerd.io", "servers", [{**server, "apiVersion": "policy.linkerd.io/v1beta1"}]
    ) == ["Name", "Port", "Protocol"]
    # an explicit version wins over the objects' apiVersion
    assert cells("policy.linkerd.io", "servers", server, version="v1beta2") == [
        "httpbin-http",
        "8080",
        "HTTP/1",
    ]
    saz = {
        "apiVersion": "policy.linkerd.io/v1beta1",
        "metadata": {"name": "a"},
        "spec": {"server": {"name": "httpbin-http"}},
    }
    assert headers("policy.linkerd.io", "serverauthorizations", [saz]) == ["Name", "Server"]
    assert headers("policy.linkerd.io", "authorizationpolicies") == ["Name", "Age"]
    assert headers("policy.linkerd.io", "meshtlsauthentications") == ["Name", "Age"]


def test_gateway_api_columns() -> None:
    """gateway-api config/crd/standard: Gateway CLASS ADDRESS PROGRAMMED AGE, where ADDRESS is
    the first address only (tableconvertor keeps the first JSONPath result)."""
    gw = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "metadata": {"name": "waypoint", "creationTimestamp": ts(timedelta(minutes=20))},
        "spec": {"gatewayClassName": "istio-waypoint"},
        "status": {
            "addresses": [{"type": "IPAddress", "value": "10.96.5.5"}, {"value": "10.96.5.6"}],
            "conditions": [
                {"type": "Accepted", "status": "True"},
                {"type": "Programmed", "status": "False"},
            ],
        },
    }
    assert headers("gateway.networking.k8s.io", "gateways", [gw]) == [
        "Name",
        "Class",
        "Address",
        "Programmed",
        "Age",
    ]
    assert cells("gateway.networking.k8s.io", "gateways", gw) == [
        "waypoint",
        "istio-waypoint",
        "10.96.5.5",
        "False",
        "20m",
    ]
    del gw["status"]
    assert cells("gateway.networking.k8s.io", "gateways", gw) == [
        "waypoint",
        "istio-waypoint",
        None,
        None,
        "20m",
    ]
    route = {"metadata": {"name": "r"}, "spec": {"hostnames": ["bookinfo.example.com"]}}
    assert cells("gateway.networking.k8s.io", "httproutes", route) == [
        "r",
        '["bookinfo.example.com"]',
        None,  # a CRD date column over a missing value is null, not "<unknown>"
    ]
    gc = to_table("gateway.networking.k8s.io", "gatewayclasses", [], NOW)
    assert gc is not None
    assert [(c["name"], c["priority"]) for c in gc["columnDefinitions"]][-1] == ("Description", 1)


# --- the Table envelope ------------------------------------------------------------------------


def test_include_object_and_single_object_metadata() -> None:
    pod = running_pod()
    single = to_table("", "pods", [pod], NOW)
    assert single is not None
    assert single["kind"] == "Table" and single["apiVersion"] == "meta.k8s.io/v1"
    assert single["metadata"] == {"resourceVersion": "42"}  # a GET carries the object's
    assert single["rows"][0]["object"]["metadata"] == pod["metadata"]
    full = to_table("", "pods", [pod], NOW, include_object="Object")
    assert full is not None and full["rows"][0]["object"] == pod
    bare = to_table("", "pods", [pod], NOW, include_object="None")
    assert bare is not None and bare["rows"][0]["object"] is None
    assert json.loads(json.dumps(bare))["rows"][0] == {
        "cells": bare["rows"][0]["cells"],
        "object": None,
    }
    with pytest.raises(ValueError, match='unrecognized includeObject value: "All"'):
        to_table("", "pods", [pod], NOW, include_object="All")
    # the table is the caller's to serialise or change: nothing is shared with the store
    before = copy.deepcopy(pod)
    assert full is not None
    full["rows"][0]["object"]["metadata"]["labels"]["app"] = "changed"
    single["rows"][0]["object"]["metadata"]["name"] = "changed"
    assert pod == before


def test_list_meta_is_carried() -> None:
    table = to_table(
        "",
        "pods",
        [],
        NOW,
        list_meta={"resourceVersion": "9", "continue": "abc", "remainingItemCount": 4},
    )
    assert table is not None
    assert table["metadata"] == {"resourceVersion": "9", "continue": "abc", "remainingItemCount": 4}
    assert table["rows"] == []
    # watch events after the first carry no column definitions
    later = to_table("", "pods", [running_pod()], NOW, no_headers=True)
    assert later is not None and later["columnDefinitions"] is None
    assert later["rows"][0]["cells"][:2] == ["httpbin-5f6d7c8b9-x2x4q", "2/2"]


def test_unknown_types_are_left_to_the_caller() -> None:
    assert to_table("authorization.k8s.io", "selfsubjectaccessreviews", [], NOW) is None
    assert to_table("example.com", "widgets", [], NOW) is None
    assert not known("example.com", "widgets")
    assert known("", "pods") and known("security.istio.io", "peerauthentications")


_ALL_TYPES = [
    ("", "pods"), ("", "services"), ("", "endpoints"), ("", "namespaces"), ("", "events"),
    ("", "configmaps"), ("", "secrets"), ("", "serviceaccounts"), ("", "nodes"),
    ("", "persistentvolumeclaims"), ("apps", "deployments"), ("apps", "replicasets"),
    ("apps", "statefulsets"), ("apps", "daemonsets"), ("networking.k8s.io", "networkpolicies"),
    ("networking.k8s.io", "ingresses"), ("networking.k8s.io", "ingressclasses"),
    ("discovery.k8s.io", "endpointslices"), ("security.istio.io", "peerauthentications"),
    ("networking.istio.io", "virtualservices"), ("gateway.networking.k8s.io", "gateways"),
    ("gateway.networking.k8s.io", "gatewayclasses"), ("policy.linkerd.io", "servers"),
]  # fmt: skip

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["metadata", "spec", "status", "containers", "containerStatuses", "initContainerStatuses", "state",
     "ports", "subsets", "addresses", "selector", "matchExpressions", "conditions", "mtls", "mode",
     "creationTimestamp", "deletionTimestamp", "name", "restartCount", "type", "hosts", "loadBalancer"]
)  # fmt: skip
_shaped = st.recursive(
    _json,
    lambda children: st.dictionaries(_keys, children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(_ALL_TYPES), obj=st.dictionaries(_keys, _shaped, max_size=6))
def test_odd_objects_never_break_the_table(kind: tuple[str, str], obj: dict[str, Any]) -> None:
    """A stored object of any shape still prints (a server answers, it does not crash)."""
    table = to_table(*kind, [obj], NOW)
    assert table is not None
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])
    json.dumps(table)


def test_module_is_pure() -> None:
    """No I/O, no sandbox or policy imports: the printers only compute."""
    code = "import json, sys, meshtutor.kubeapi.tables; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(json.loads(out.stdout))
    assert not {m for m in loaded if m.startswith(("meshtutor.sandbox", "meshtutor.policy"))}
    assert not loaded & {"socket", "asyncio", "kubernetes", "textual"}


# --- through the real kubectl (optional: skipped where no kubectl is installed) ------------------


class _Stub(BaseHTTPRequestHandler):
    """Just enough of an API server for `kubectl get`: discovery and the Table."""

    objects: ClassVar[dict[str, tuple[str, str, list[dict[str, Any]]]]] = {}
    discovery: ClassVar[dict[str, dict[str, Any]]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        body = self.discovery.get(path)
        if body is None:
            for suffix, (group, plural, objs) in self.objects.items():
                if path.endswith(suffix):
                    assert "as=Table" in self.headers.get("Accept", "")
                    body = to_table(
                        group, plural, objs, datetime.now(UTC), list_meta={"resourceVersion": "1"}
                    )
        data = json.dumps(body or {"kind": "Status", "apiVersion": "v1", "code": 404}).encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(params=["27", "33"], ids=["kubectl-1.27", "kubectl-1.33"])
def stub_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The kubectl on PATH here picks kubectl 1.27 .. 1.33 by the server's /version."""
    if shutil.which("kubectl") is None:
        pytest.skip("no kubectl on PATH")
    real_now = datetime.now(UTC)
    pod = running_pod()
    # ages chosen mid-way in their unit, so a slow machine still reads the same cell
    pod["metadata"]["creationTimestamp"] = ts(timedelta(minutes=25, seconds=30), now=real_now)
    pas = [
        peer_auth("default", "istio-system", {"mtls": {"mode": "STRICT"}}, timedelta(hours=3, minutes=5, seconds=30)),
        peer_auth("httpbin", "demo", {"portLevelMtls": {"8080": {"mode": "DISABLE"}}}, timedelta(days=2, hours=3, minutes=30)),
    ]  # fmt: skip
    for pa in pas:
        ago = NOW - datetime.fromisoformat(pa["metadata"]["creationTimestamp"])
        pa["metadata"]["creationTimestamp"] = ts(ago, now=real_now)
    svc = service(
        {
            "type": "NodePort",
            "clusterIP": "10.96.1.2",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
        }
    )
    svc["metadata"]["creationTimestamp"] = ts(timedelta(days=45, hours=1), now=real_now)
    _Stub.objects = {
        "/pods": ("", "pods", [pod]),
        "/peerauthentications": ("security.istio.io", "peerauthentications", pas),
        "/services": ("", "services", [svc]),
    }
    resource = {"namespaced": True, "verbs": ["get", "list"]}
    _Stub.discovery = {
        "/version": {"major": "1", "minor": request.param, "gitVersion": f"v1.{request.param}.1"},
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
        "/apis": {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": "security.istio.io",
                    "versions": [{"groupVersion": "security.istio.io/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "security.istio.io/v1", "version": "v1"},
                }
            ],
        },
        "/api/v1": {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                {"name": "pods", "singularName": "pod", "kind": "Pod", "shortNames": ["po"], **resource},
                {"name": "services", "singularName": "service", "kind": "Service", "shortNames": ["svc"], **resource},
            ],
        },
        "/apis/security.istio.io/v1": {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "security.istio.io/v1",
            "resources": [
                {"name": "peerauthentications", "singularName": "peerauthentication", "kind": "PeerAuthentication", "shortNames": ["pa"], **resource}
            ],
        },
    }  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stub", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
                "users": [{"name": "stub", "user": {}}],
                "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub", "namespace": "demo"}}],
                "current-context": "stub",
            }
        )
    )  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
    try:
        yield env
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def columns_of(env: dict[str, str], *args: str) -> list[list[str]]:
    """kubectl's output split into columns (two or more spaces apart)."""
    out = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return [[c.strip() for c in line.split("  ") if c.strip()] for line in out.stdout.splitlines()]


def test_real_kubectl_prints_the_table(stub_api: dict[str, str]) -> None:
    """The rows as a learner sees them in the terminal."""
    assert columns_of(stub_api, "get", "pods") == [
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["httpbin-5f6d7c8b9-x2x4q", "2/2", "Running", "0", "25m"],
    ]
    assert columns_of(stub_api, "get", "pods", "-o", "wide")[0] == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES",
    ]  # fmt: skip
    assert columns_of(stub_api, "get", "peerauthentication", "-A") == [
        ["NAMESPACE", "NAME", "MODE", "AGE"],
        ["istio-system", "default", "STRICT", "3h5m"],
        ["demo", "httpbin", "2d3h"],  # no MODE: an empty cell
    ]
    assert columns_of(stub_api, "get", "svc") == [
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        ["httpbin", "NodePort", "10.96.1.2", "<none>", "80:30080/TCP", "45d"],
    ]
