"""The documentation's code: every Python example in the README and docs/ is valid Python, and
every bot module it names exists (the site itself is built with --strict by scripts/test;
tests/test_docs_examples.py runs each example)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for n, code in enumerate(BLOCK.findall(page.read_text())):
            found.append((f"{page.relative_to(ROOT)}#{n + 1}", code))
    return found


@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_a_python_example_is_valid_python(where: str, code: str) -> None:
    compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)  # snippets may await


def test_every_bot_module_the_docs_name_exists() -> None:
    named = set()
    for page in PAGES:
        named |= set(re.findall(r"\bbots\.([a-z_]+)\b", page.read_text()))
    readers = {
        "shop"
    }  # the reader's own bot, in the examples of a project or an image of one's own
    missing = sorted(n for n in named - readers if importlib.util.find_spec(f"bots.{n}") is None)
    assert missing == [], f"the docs name bots that do not exist: {missing}"


def test_the_pages_are_all_in_the_site() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert sorted(p for p in pages if p not in config) == []


def test_the_readme_s_first_bot_is_bots_hello_as_it_is() -> None:
    first = BLOCK.findall((ROOT / "README.md").read_text())[0]
    assert first.strip() in (ROOT / "bots" / "hello.py").read_text()
