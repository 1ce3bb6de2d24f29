"""Hostile YAML gets one line naming the file and line, never a traceback or a memory blow-up.

Issue 13 items 10 and 14: a 385-byte "billion laughs" manifest (aliases nested nine deep under
``status``) loaded fine, then made ``json.dumps`` of the kube apply path build 3.7 GB; a
5,000-digit integer, a deeply nested list or an explicit tag that does not fit its value
raised ValueError/RecursionError/KeyError out of PyYAML's constructor.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from meshtutor.errors import ManifestError
from meshtutor.model import load_file, load_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzzkit import billion_laughs

# The bounds README states; test_bounds_are_the_documented_ones checks the module uses them.
MAX_ALIAS_NODES = 10_000
MAX_DEPTH = 100

HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  namespace: default\n"


def laughs(levels: int = 9) -> str:
    return billion_laughs(levels)


def one_line(exc: pytest.ExceptionInfo[ManifestError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


class TestAliasBombs:
    def test_the_385_byte_bomb_is_refused_at_the_line_of_the_alias(self) -> None:
        text = laughs()
        assert len(text.encode()) < 450
        with pytest.raises(ManifestError) as exc:
            load_yaml(text, source="bomb.yaml")
        message = one_line(exc)
        # Level e is the first whose aliases (9 * 820 nodes each) take the file past 10,000.
        line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("  e:"))
        assert message.startswith(f"bomb.yaml:{line}: ")
        assert f"more than {MAX_ALIAS_NODES:,} nodes" in message
        assert "*d at column" in message

    def test_a_smaller_bomb_never_reaches_the_apply_body(self, tmp_path: Path) -> None:
        """Seven levels expand to 4.8 million strings: the kube apply path's json.dumps of
        the loaded document would build ~30 MB; nothing may load such a file."""
        path = tmp_path / "bomb.yaml"
        path.write_text(laughs(levels=7))
        with pytest.raises(ManifestError, match=r"bomb\.yaml:\d+: .*alias"):
            load_file(path)

    def test_a_recursive_alias_is_refused(self) -> None:
        with pytest.raises(ManifestError, match=r"^x\.yaml:7: .*refers to the collection"):
            load_yaml(HEAD + "status:\n  a: &a [1, *a]\n", source="x.yaml")

    def test_a_few_aliases_as_real_manifests_use_them_still_load(self) -> None:
        text = HEAD + textwrap.dedent("""\
            data:
              a: &v "1"
              b: *v
            """)
        (doc,) = load_yaml(text)
        assert doc.raw["data"] == {"a": "1", "b": "1"}

    def test_merge_keys_count_too(self) -> None:
        lines = [HEAD, "status:\n", "  m0: &m0 {a: 1, b: 2, c: 3, d: 4}\n"]
        for level in range(1, 12):
            refs = ", ".join([f"*m{level - 1}"] * 6)
            lines.append(f"  m{level}: &m{level} {{<<: [{refs}], k: [{refs}]}}\n")
        with pytest.raises(ManifestError, match="alias"):
            load_yaml("".join(lines))

    def test_plain_loading_is_bounded_too(self) -> None:
        """The mesh config inside a ConfigMap and kubeconfigs load through ``load_single``."""
        from meshtutor.model.yamlnodes import load_single, yaml_problem

        with pytest.raises(yaml.YAMLError) as exc:
            load_single(laughs())
        line, message = yaml_problem(exc.value)
        assert line == 9 and "alias *d" in message


class TestNumbers:
    def test_a_5000_digit_integer_in_a_port(self) -> None:
        text = HEAD.replace("ConfigMap", "Service") + f"spec:\n  ports:\n  - port: {'9' * 5000}\n"
        with pytest.raises(ManifestError) as exc:
            load_yaml(text, source="big.yaml")
        message = one_line(exc)
        assert message.startswith("big.yaml:8: ")
        assert "5,000 digits" in message and len(message) < 300

    def test_a_5000_digit_integer_under_status(self) -> None:
        with pytest.raises(ManifestError, match=r"^big\.yaml:7: .*5,000 digits"):
            load_yaml(HEAD + f"status:\n  x: {'9' * 5000}\n", source="big.yaml")

    def test_64_bit_integers_still_load(self) -> None:
        (doc,) = load_yaml(HEAD + f"status:\n  x: {2**63 - 1}\n  y: -{2**63}\n")
        assert doc.raw["status"] == {"x": 2**63 - 1, "y": -(2**63)}


class TestShapes:
    @pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
    def test_deep_nesting(self, opening: str, closing: str) -> None:
        depth = 300
        text = HEAD + "status: " + opening * depth + "1" * (opening == "{a: ") + closing * depth
        with pytest.raises(ManifestError) as exc:
            load_yaml(text + "\n", source="deep.yaml")
        assert one_line(exc).startswith("deep.yaml:6: ")
        assert f"{MAX_DEPTH} levels" in str(exc.value)

    def test_nesting_a_real_manifest_uses_loads(self) -> None:
        depth = MAX_DEPTH - 10
        (doc,) = load_yaml(HEAD + "status: " + "[" * depth + "]" * depth + "\n")
        assert doc.kind == "ConfigMap"

    @pytest.mark.parametrize(
        "value",
        ["!!int abc", "!!float abc", "!!timestamp xx", "!!bool maybe", "0000-01-01", "2001-02-30"],
    )
    def test_a_value_that_does_not_fit_its_tag(self, value: str) -> None:
        with pytest.raises(ManifestError) as exc:
            load_yaml(HEAD + f"status:\n  x: {value}\n", source="tag.yaml")
        assert one_line(exc).startswith("tag.yaml:7: ")


def test_loaded_documents_serialise_quickly() -> None:
    """What loads can be serialised by the apply path (json.dumps of ``raw``)."""
    text = HEAD + "data:\n" + "".join(f"  k{i}: &v{i} 'x'\n  r{i}: *v{i}\n" for i in range(50))
    (doc,) = load_yaml(text)
    assert len(json.dumps(doc.raw)) < 10_000


def test_bounds_are_the_documented_ones() -> None:
    from meshtutor.model import yamlnodes

    assert (yamlnodes.MAX_ALIAS_NODES, yamlnodes.MAX_DEPTH) == (MAX_ALIAS_NODES, MAX_DEPTH)
