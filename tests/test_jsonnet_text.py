"""kapitan/lib/text.libsonnet, evaluated with the go-jsonnet Kapitan uses: the template filler and
the substring test that replaced std.format and std.findSubstr on the compile's hot path."""

from __future__ import annotations

import json

import _gojsonnet
import pytest

from conftest import REPO


def evaluate(snippet: str) -> object:
    code = "local text = import 'text.libsonnet';\n" + snippet
    return json.loads(_gojsonnet.evaluate_snippet("test.jsonnet", code, jpathdir=[str(REPO / "kapitan" / "lib")]))


def test_fill_gives_the_bytes_std_format_gives() -> None:
    template = "[databases]\n%(db)s = host=%(host)s port=%(port)s dbname=%(db)s\nwith open(f\"%(dir)s/{name}\")\n"
    values = "{ db: 'airflow', host: 'pg.example', port: 5432, dir: '/opt/airflow/auth-secrets' }"
    assert evaluate(f"text.fill({json.dumps(template)}, {values})") == evaluate(f"{json.dumps(template)} % {values}")


def test_fill_inserts_a_value_as_it_is_even_one_that_looks_like_a_placeholder() -> None:
    assert evaluate("text.fill('a=%(a)s b=%(b)s', { a: '%(b)s', b: 'B' })") == "a=%(b)s b=B"


def test_fill_names_a_placeholder_without_a_value() -> None:
    with pytest.raises(RuntimeError, match=r"text.fill: a placeholder %\(port\)s has no value \(values: host\)"):
        evaluate("text.fill('host=%(host)s port=%(port)s', { host: 'h' })")


@pytest.mark.parametrize(("text", "part", "expected"), [
    ("https://git.example.com/platform.git", "example.com", True),
    ("https://git.acme.internal/platform.git", "example.com", False),
    ("example.com", "example.com", True),
    ("a{{b", "{{", True),
    ("", "$", False),
])
def test_contains_agrees_with_std_find_substr(text: str, part: str, expected: bool) -> None:
    found = evaluate(f"[text.contains({json.dumps(text)}, {json.dumps(part)}), std.findSubstr({json.dumps(part)}, {json.dumps(text)}) != []]")
    assert found == [expected, expected]
