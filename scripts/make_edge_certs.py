"""Regenerate manifests/edge/: the stand-in public CA bundle and shop.example.com TLS Secrets.

    python scripts/make_edge_certs.py            # rewrite the files
    python scripts/make_edge_certs.py --check    # exit 1 if a committed file is out of date

The output is deterministic (a fixed seed and a fixed not-before of 2026-01-01), so running
this again changes nothing unless the code that makes the certificates changed.

Real public certificates live 90 days (Let's Encrypt) and cert-manager renews them before
they expire. These demo certificates are valid for 10 years instead, so that the committed
files keep working without anything to renew them. Their keys are public: demo use only.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from meshtutor.pki.edge import PublicCA, tls_secret_manifest

SEED = 2026
NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 3650  # as long as the stand-in issuing CA
HOSTS = ["shop.example.com"]
SECRET = "shop-example-com-tls"
# Istio reads a Gateway's credentialName Secret from the gateway's own namespace;
# ingress-nginx reads an Ingress's spec.tls secretName from the Ingress's namespace.
SECRETS = {"shop-tls-istio.yaml": "istio-system", "shop-tls-nginx.yaml": "shop"}

EDGE_DIR = Path(__file__).resolve().parent.parent / "manifests" / "edge"


def render() -> dict[str, bytes]:
    """File name -> content of every file in manifests/edge/."""
    ca = PublicCA.create(seed=SEED, not_before=NOT_BEFORE)
    cert = ca.issue(HOSTS, days=DAYS, not_before=NOT_BEFORE)
    files = {"public-ca.pem": ca.root_pem}
    for file_name, namespace in SECRETS.items():
        manifest = tls_secret_manifest(cert, name=SECRET, namespace=namespace)
        files[file_name] = manifest.encode("utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for file_name, content in render().items():
        path = EDGE_DIR / file_name
        if args.check:
            if not path.exists() or path.read_bytes() != content:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path}")
    for path in stale:
        print(f"out of date: {path} (run python scripts/make_edge_certs.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
