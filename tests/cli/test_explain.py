"""`meshtutor explain` as a user runs it: a real process, its output and its exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "manifests/online-boutique/demo.yaml")
STRICT_NS = str(ROOT / "manifests/online-boutique/strict-namespace.yaml")
STRICT_FRONTEND = str(ROOT / "manifests/online-boutique/strict-frontend.yaml")
SAMPLES = ROOT / "manifests/samples"
PROXY_PROBE = "demo/productcatalogservice:istio-proxy=http://frontend:80/"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshtutor", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def explain_json(*args: str) -> list[dict[str, object]]:
    result = run("explain", *args, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


class TestOnlineBoutique:
    """The `demo` walkthrough: curl from productcatalogservice's istio-proxy to frontend."""

    def test_no_policy_is_200(self) -> None:
        (probe,) = explain_json("-f", DEMO, PROXY_PROBE)
        assert (probe["http_code"], probe["exit_code"], probe["mtls"]) == ("200", 0, False)
        assert probe["container"] == "istio-proxy"
        assert any("PERMISSIVE" in line for line in probe["explanation"])  # type: ignore[union-attr]

    def test_namespace_strict_resets(self) -> None:
        (probe,) = explain_json("-f", DEMO, "-f", STRICT_NS, PROXY_PROBE)
        assert (probe["http_code"], probe["exit_code"]) == ("000", 56)
        assert any("PeerAuthentication demo/default" in line for line in probe["explanation"])  # type: ignore[union-attr]
        assert any("uid 1337" in line for line in probe["explanation"])  # type: ignore[union-attr]

    def test_workload_strict_with_istio_mutual_rule_resets(self) -> None:
        proxy, app = explain_json(
            "-f",
            DEMO,
            "-f",
            STRICT_FRONTEND,
            PROXY_PROBE,
            "demo/productcatalogservice=http://frontend:80/",
        )
        assert (proxy["http_code"], proxy["exit_code"]) == ("000", 56)
        assert any("PeerAuthentication demo/frontend" in line for line in proxy["explanation"])  # type: ignore[union-attr]
        # The application container is captured: its sidecar speaks mutual TLS, so it still works.
        assert (app["http_code"], app["exit_code"], app["mtls"]) == ("200", 0, True)
        assert app["client_identity"] == "spiffe://cluster.local/ns/demo/sa/productcatalogservice"
        assert app["server_identity"] == "spiffe://cluster.local/ns/demo/sa/frontend"
        assert any("DestinationRule demo/frontend" in line for line in app["explanation"])  # type: ignore[union-attr]

    def test_json_has_every_documented_field(self) -> None:
        (probe,) = explain_json("-f", DEMO, PROXY_PROBE)
        for key in (
            "from",
            "container",
            "url",
            "http_code",
            "exit_code",
            "mtls",
            "client_identity",
            "server_identity",
            "explanation",
        ):
            assert key in probe
        assert probe["from"] == "demo/productcatalogservice"
        assert probe["url"] == "http://frontend:80/"


class TestHumanOutput:
    def test_istio_docs_style_line_then_explanation(self) -> None:
        result = run("explain", "-f", DEMO, "-f", STRICT_NS, PROXY_PROBE)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert (
            lines[0]
            == "productcatalogservice.demo (istio-proxy) to frontend.demo: 000 (curl exit code 56)"
        )
        assert lines[1].startswith("  1. the client container istio-proxy runs as uid 1337")
        assert any(
            "namespace-wide PeerAuthentication demo/default sets STRICT" in line for line in lines
        )

    def test_namespace_option_places_documents(self) -> None:
        result = run(
            "explain",
            "-n",
            "foo",
            "-f",
            str(SAMPLES / "namespaces.yaml"),
            "-f",
            str(SAMPLES / "sleep.yaml"),
            "-f",
            str(SAMPLES / "httpbin.yaml"),
            "foo/sleep=http://httpbin.foo:8000/ip",
            "foo/sleep=http://httpbin:8000/headers",
        )
        assert result.returncode == 0, result.stderr
        heads = [line for line in result.stdout.splitlines() if not line.startswith(" ") and line]
        assert heads == ["sleep.foo to httpbin.foo: 200  [mutual TLS]"] * 2

    def test_probes_file(self, tmp_path: Path) -> None:
        probes = tmp_path / "probes.yaml"
        probes.write_text(
            "- from: demo/productcatalogservice\n"
            "  url: http://frontend/\n"
            "  method: POST\n"
            "  headers: {x-user: alice}\n"
            "  timeout: 3\n"
            "- from: demo/productcatalogservice\n"
            "  container: istio-proxy\n"
            "  url: http://frontend.demo.svc.cluster.local:80/\n"
        )
        data = explain_json("-f", DEMO, "--probes", str(probes))
        assert [d["http_code"] for d in data] == ["200", "200"]
        assert data[0]["method"] == "POST" and data[1]["container"] == "istio-proxy"


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


class TestBadInput:
    def test_missing_file(self) -> None:
        line = _one_line_error(run("explain", "-f", "nope.yaml", PROXY_PROBE))
        assert line == "meshtutor: nope.yaml: no such file"

    def test_malformed_yaml(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: [\n")
        line = _one_line_error(run("explain", "-f", str(bad), PROXY_PROBE))
        assert f"{bad}:" in line and "this is not valid YAML" in line

    def test_wrong_enum_names_file_line_and_field(self, tmp_path: Path) -> None:
        bad = tmp_path / "pa.yaml"
        bad.write_text(Path(STRICT_NS).read_text().replace("STRICT", "STRICTLY"))
        line = _one_line_error(run("explain", "-f", DEMO, "-f", str(bad), PROXY_PROBE))
        assert f"{bad}:9, document 1, field spec.mtls.mode: mode must be one of" in line

    @pytest.mark.parametrize(
        "probe, message",
        [
            ("demo/frontend", "expected NAMESPACE/DEPLOYMENT[:CONTAINER]=URL"),
            ("demo/frontend=frontend:80", "is not a URL"),
            ("demo/frontend=ftp://frontend/", "only http:// and https:// URLs"),
            ("demo/frontend=http://frontend:99999/", "is not a valid URL"),
            # curl itself refuses such a host (exit 3): a typo, not something the mesh decides
            ("demo/frontend=http://front$end/", "the host 'front$end' is not a name DNS can hold"),
            ("demo/frontend=http://fronténd/", "the host 'fronténd' is not a name DNS can hold"),
            ("Demo/Frontend=http://frontend/", "is not valid"),
            (
                "demo/nope=http://frontend/",
                "no workload demo/nope; workloads in demo: frontend, productcatalogservice",
            ),
            (
                "demo/frontend:sidecar=http://frontend/",
                "has no container 'sidecar'; containers: server, istio-proxy",
            ),
            ("nowhere/frontend=http://frontend/", "namespace 'nowhere' does not exist"),
        ],
    )
    def test_bad_probe(self, probe: str, message: str) -> None:
        line = _one_line_error(run("explain", "-f", DEMO, probe))
        assert message in line

    def test_bad_probes_file_entry(self, tmp_path: Path) -> None:
        probes = tmp_path / "p.yaml"
        probes.write_text(
            "- from: demo/frontend\n  url: http://frontend/\n- form: demo/frontend\n  url: http://x/\n"
        )
        line = _one_line_error(run("explain", "-f", DEMO, "--probes", str(probes)))
        assert f"{probes}:3: unknown field 'form'" in line

    def test_policy_for_the_other_mesh(self) -> None:
        line = _one_line_error(
            run(
                "explain",
                "--mesh",
                "linkerd",
                "-f",
                DEMO,
                "-f",
                STRICT_NS,
                PROXY_PROBE.replace(":istio-proxy", ""),
            )
        )
        assert (
            "PeerAuthentication" in line
            and "Istio is not installed in this linkerd cluster" in line
        )

    def test_namespace_missing(self) -> None:
        line = _one_line_error(run("explain", "-f", STRICT_NS, "default/x=http://y/"))
        assert "namespace 'demo' not found; apply its Namespace first" in line

    def test_no_manifest(self) -> None:
        result = run("explain", PROXY_PROBE)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "-f FILE" in result.stderr

    def test_no_probe(self) -> None:
        result = run("explain", "-f", DEMO)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "give at least one PROBE" in result.stderr
