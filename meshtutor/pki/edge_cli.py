"""``meshtutor tls-secret``: a ``kubernetes.io/tls`` Secret from the stand-in public CA.

Only click is imported at module level, as in :mod:`meshtutor.pki.cli`: ``meshtutor`` imports
this module to find the command, and cryptography costs tens of milliseconds.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from meshtutor.pki.cli import _OneLineUsageErrors

_HELP = """Print a kubernetes.io/tls Secret with a certificate for HOST... (SAN DNS names).

A stand-in public CA (in place of Let's Encrypt, which the sandbox cannot reach) signs it:
root → issuing CA → certificate. The CA is kept in --ca-dir, so every run shares one root;
give its public-ca.pem to curl --cacert. Istio's gateway reads the Secret (credentialName)
from its own namespace, istio-system; ingress-nginx from the Ingress's namespace.

    meshtutor tls-secret shop.example.com --name shop-example-com-tls -n istio-system
"""


@click.command("tls-secret", cls=_OneLineUsageErrors, help=_HELP)
@click.argument("hosts", metavar="HOST [HOST...]", nargs=-1, required=True)
@click.option("--name", required=True, help="The Secret's name, e.g. shop-example-com-tls.")
@click.option(
    "--namespace",
    "-n",
    required=True,
    help="istio-system for an Istio gateway, the Ingress's namespace for ingress-nginx.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=90,
    show_default=True,
    help="Validity (Let's Encrypt: 90; cert-manager renews at two thirds).",
)
@click.option(
    "--ca-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the stand-in CA lives (default: meshtutor's data directory, edge-ca).",
)
def tls_secret(
    hosts: tuple[str, ...], name: str, namespace: str, days: int, ca_dir: Path | None
) -> None:
    from meshtutor.paths import data_dir
    from meshtutor.pki.edge import (
        BUNDLE_FILE,
        PublicCA,
        _example_host,
        check_hosts,
        check_secret_name,
        tls_secret_manifest,
    )

    names = check_hosts(hosts)  # mistakes first, before a CA is created on disk
    check_secret_name(name, namespace)
    folder = ca_dir if ca_dir is not None else data_dir() / "edge-ca"
    ca = PublicCA.open(folder)
    cert = ca.issue(names, days=days)
    manifest = tls_secret_manifest(cert, name=name, namespace=namespace)
    click.echo(manifest, nl=False)
    bundle = shlex.quote(str((folder / BUNDLE_FILE).resolve()))
    host = _example_host(names)
    click.echo(f"CA bundle (the stand-in root, for curl --cacert): {bundle}", err=True)
    click.echo(f"  curl --cacert {bundle} --resolve {host}:443:ADDRESS https://{host}/", err=True)
