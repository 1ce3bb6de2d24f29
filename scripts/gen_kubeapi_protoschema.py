"""Write ``meshtutor/kubeapi/protoschema.py``: the protobuf field numbers of the built-in kinds
the sandbox's API serves, read from the ``generated.proto`` files of k8s.io/api and
k8s.io/apimachinery. kubectl 1.32 and later send protobuf request bodies for the writes of
its typed clients (``kubectl create namespace``, ``kubectl create configmap``, ``kubectl auth
can-i`` …); the API decodes them with this table.

    python scripts/gen_kubeapi_protoschema.py API_DIR APIMACHINERY_DIR [--ref TEXT]

API_DIR is a checkout of k8s.io/api (``core/v1/generated.proto`` …), APIMACHINERY_DIR one of
k8s.io/apimachinery (``pkg/apis/meta/v1/generated.proto`` …).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

API_FILES = (
    "core/v1",
    "apps/v1",
    "authorization/v1",
    "networking/v1",
    "events/v1",
    "autoscaling/v1",
)
APIMACHINERY_FILES = (
    "pkg/apis/meta/v1",
    "pkg/runtime",
    "pkg/runtime/schema",
    "pkg/util/intstr",
    "pkg/api/resource",
)
# The kinds a write may carry, and what they reach: the rest of the files is left out.
ROOTS = (
    *(
        f"k8s.io.api.{name}"
        for name in (
            "core.v1.Namespace",
            "core.v1.Pod",
            "core.v1.Service",
            "core.v1.ServiceAccount",
            "core.v1.ConfigMap",
            "core.v1.Secret",
            "core.v1.Endpoints",
            "core.v1.Event",
            "core.v1.PersistentVolumeClaim",
            "core.v1.Node",
            "apps.v1.Deployment",
            "apps.v1.ReplicaSet",
            "apps.v1.StatefulSet",
            "apps.v1.DaemonSet",
            "networking.v1.NetworkPolicy",
            "networking.v1.Ingress",
            "networking.v1.IngressClass",
            "events.v1.Event",
            "authorization.v1.SelfSubjectAccessReview",
            "authorization.v1.SelfSubjectRulesReview",
            "autoscaling.v1.Scale",
        )
    ),
    "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "k8s.io.apimachinery.pkg.runtime.Unknown",
)
SCALARS = {"string", "bool", "int32", "int64", "bytes", "double", "float", "uint32", "uint64"}
FIELD = re.compile(
    r"^\s*(optional|repeated)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;"
)


def parse(path: Path) -> tuple[str, dict[str, list[tuple[int, str, str, bool]]]]:
    """(package, {message: [(number, name, type, repeated)]}) of one generated.proto."""
    package = ""
    messages: dict[str, list[tuple[int, str, str, bool]]] = {}
    current: str | None = None
    depth = 0
    for raw in path.read_text().splitlines():
        line = raw.split("//", 1)[0].rstrip()
        if not line.strip():
            continue
        if m := re.match(r"^package\s+([\w.]+);", line):
            package = m.group(1)
            continue
        if depth == 0 and (m := re.match(r"^message\s+(\w+)\s*\{", line)):
            current = m.group(1)
            messages[current] = []
            depth = 1
            continue
        if current is None:
            continue
        depth += line.count("{") - line.count("}")
        if depth <= 0:
            current, depth = None, 0
            continue
        if depth == 1 and (m := FIELD.match(line)):
            label, kind, key, value, name, number = m.groups()
            kind = f"map:{key}:{value}" if key else kind
            messages[current].append((int(number), name, kind, label == "repeated"))
    return package, messages


def qualify(kind: str, package: str) -> str:
    if kind in SCALARS:
        return kind
    if kind.startswith("map:"):
        _, key, value = kind.split(":")
        return f"map:{key}:{qualify(value, package)}"
    return kind.lstrip(".") if kind.startswith(".") else f"{package}.{kind}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("api", type=Path)
    parser.add_argument("apimachinery", type=Path)
    parser.add_argument("--ref", default="", help="the versions read, for the header")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "meshtutor/kubeapi/protoschema.py",
    )
    args = parser.parse_args()
    files = [args.api / f / "generated.proto" for f in API_FILES] + [
        args.apimachinery / f / "generated.proto" for f in APIMACHINERY_FILES
    ]
    table: dict[str, list[tuple[int, str, str, bool]]] = {}
    for path in files:
        if not path.is_file():
            print(f"{path}: no such file (expected a generated.proto there)", file=sys.stderr)
            return 2
        package, messages = parse(path)
        for name, fields in messages.items():
            table[f"{package}.{name}"] = [
                (n, field, qualify(kind, package), rep) for n, field, kind, rep in fields
            ]
    reachable: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in reachable or name not in table:
            continue
        reachable.add(name)
        for _, _, kind, _ in table[name]:
            todo.append(kind.rsplit(":", 1)[-1])
    missing = [r for r in ROOTS if r not in table]
    if missing:
        print(f"not in the files: {', '.join(missing)}", file=sys.stderr)
        return 2
    table = {k: v for k, v in table.items() if k in reachable}
    lines = [
        '"""The protobuf field numbers of the built-in kinds the sandbox\'s API serves: generated by',
        "``scripts/gen_kubeapi_protoschema.py`` from the ``generated.proto`` files of k8s.io/api and",
        f"k8s.io/apimachinery{(' (' + args.ref + ')') if args.ref else ''}. Do not edit.",
        "",
        "``MESSAGES[name]`` is ``{number: (json name, type, repeated)}``; a type is a scalar",
        "(``string``, ``int64`` …), a message's full name, or ``map:<key type>:<value type>``.",
        '"""',
        "",
        "# fmt: off",
        "MESSAGES: dict[str, dict[int, tuple[str, str, bool]]] = {",
    ]
    for name in sorted(table):
        entries = ", ".join(f"{n}: ({f!r}, {k!r}, {r})" for n, f, k, r in table[name])
        lines.append(f"    {name!r}: {{{entries}}},")
    lines += ["}", "# fmt: on", ""]
    args.out.write_text("\n".join(lines))
    print(f"{args.out}: {len(table)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
