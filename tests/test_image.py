"""The Docker image's inputs, checked without a Docker engine (scripts/check-image runs its
steps in a venv): what the build context leaves out, and that every install is pinned."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def pinned() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            found[name.lower().replace("_", "-")] = version
    return found


def test_every_dependency_and_extra_of_botkit_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    missing = sorted({_name(r) for r in wanted} - pinned().keys())
    assert missing == [], f"not in constraints.txt: {missing}"


def test_the_dockerfile_installs_with_the_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
    assert "constraints.txt" in dockerfile.split("COPY", 1)[1].splitlines()[0]


def test_the_build_context_leaves_out_the_venv_and_databases() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".venv/", "*.db", "*.db-*", ".git/", "**/__pycache__/", ".env"):
        assert pattern in ignored


def test_what_the_dockerfile_copies_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                if "[" not in source:  # requirements.tx[t]: copied when it exists
                    assert (ROOT / source).exists(), f"the Dockerfile copies {source}"
