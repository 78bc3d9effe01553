"""The dependency direction of STYLE.md, read from botkit's imports with `ast`.

The package tree draws the architecture: leaves (aliases, errors, settings, JSON), then `wire`
(pure values and rules of the WhatsApp wire), then `conversation` and `store` (side by side,
neither importing the other), then `provider`, `runtime`, `web`, and last `fake` and `tools`.
One rule keeps it true: a package imports only packages below it (and its own modules). Each
third-party library with an owner is imported by its owner only, and the fake GoSendAPI
shares nothing with botkit beyond `botkit.types`.

Every import counts, also those inside functions, except those under `if TYPE_CHECKING:`,
which STYLE.md allows for annotations (they run no code). A new package or top-level module
must be added to LAYERS: the test fails until it has a place.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "botkit"

# The layers, bottom first: (name, the units in it). A unit is a sub-package (botkit.wire.*)
# or a top-level module (botkit.types). Units of one layer do not import each other, except
# the leaves, which are the top of the botkit package itself.
LAYERS: list[tuple[str, frozenset[str]]] = [
    (
        "leaves",
        frozenset({"types", "exceptions", "config", "codec", "logsafe", "metrics", "tracing"}),
    ),
    ("wire", frozenset({"wire"})),
    # the decorator DSL and what a handler gets; beside it, where a bot's state is kept
    ("conversation and store", frozenset({"conversation", "store"})),
    ("provider", frozenset({"provider"})),
    ("runtime", frozenset({"runtime"})),
    ("web", frozenset({"web"})),
    ("fake", frozenset({"fake"})),
    ("tools", frozenset({"tools"})),
]
LAYER_OF = {unit: index for index, (_, units) in enumerate(LAYERS) for unit in units}

# Modules that import no other botkit module at all.
LEAF_ONLY = {"types"}

# Third-party libraries and the only modules allowed to import them.
OWNERS: dict[str, frozenset[str]] = {
    "transitions": frozenset({"botkit.conversation.dsl"}),
    "orjson": frozenset({"botkit.codec"}),
    "httptools": frozenset({"botkit.provider.transport"}),
    "certifi": frozenset({"botkit.provider.transport"}),
    "uvicorn": frozenset({"botkit.web.server", "botkit.fake.provider"}),
    "phonenumbers": frozenset({"botkit.wire.phone"}),
    "prometheus_client": frozenset({"botkit.metrics"}),
    # an extra (botkit[otel]): imported lazily, only when traces are on
    "opentelemetry": frozenset({"botkit.tracing"}),
    # an extra (botkit[postgres]): only the PostgreSQL store, which open_store imports lazily
    "asyncpg": frozenset(
        {
            "botkit.store.postgres",
            "botkit.store.postgres.inbox",
            "botkit.store.postgres.notices",
            "botkit.store.postgres.outbox",
            "botkit.store.postgres.repair",
            "botkit.store.postgres.schema",
            "botkit.store.postgres.timer_rows",
            "botkit.store.postgres.timers",
        }
    ),
}

# The fake provider: the only botkit module it may import, and its third-party libraries.
FAKE = "fake"
FAKE_BOTKIT = frozenset({"botkit.types"})
FAKE_THIRD_PARTY = frozenset({"httpx", "starlette", "uvicorn"})

# Libraries a module may import without declaring them: the host that loads it brings them
# (botkit.tools.testing is a pytest plugin, imported only by a running pytest).
HOSTED: dict[str, frozenset[str]] = {"pytest": frozenset({"botkit.tools.testing"})}

# Distribution names in pyproject.toml -> the names they are imported by.
IMPORT_NAMES = {
    "httpx-aiohttp": "httpx_aiohttp",
    "python-multipart": "multipart",
    "prometheus-client": "prometheus_client",
    "opentelemetry-api": "opentelemetry",
}


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what, where."""

    module: str  # the importer, e.g. botkit.store.sqlite
    target: str  # the imported module, e.g. botkit.codec or httpx
    line: int
    type_only: bool

    @property
    def where(self) -> str:
        path = self.module.replace(".", "/")
        is_package = (ROOT / path / "__init__.py").is_file()
        return f"{path}/__init__.py:{self.line}" if is_package else f"{path}.py:{self.line}"


def module_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The layer-table name of a botkit module: botkit.store.sqlite -> store, botkit.types -> types."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "botkit"


def is_submodule(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> Iterator[str]:
    """The modules an ImportFrom names: `from botkit import codec` names botkit.codec."""
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, *([base] if base else [])])
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        yield candidate if base.startswith("botkit") and is_submodule(candidate) else base


def type_checking_lines(tree: ast.Module) -> set[int]:
    """The line numbers inside `if TYPE_CHECKING:` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    importer = module_name(path)
    type_only = type_checking_lines(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            targets = list(resolve(node, importer, path.name == "__init__.py"))
        else:
            continue
        found += [Import(importer, t, node.lineno, node.lineno in type_only) for t in targets]
    return [i for i in found if i.target != "__future__"]


def all_imports() -> list[Import]:
    return [found for path in module_files() for found in imports_of(path)]


def botkit_imports() -> list[Import]:
    return [i for i in all_imports() if i.target.split(".")[0] == "botkit"]


def third_party_imports() -> list[Import]:
    top = {"botkit", *sys.stdlib_module_names}
    return [i for i in all_imports() if i.target.split(".")[0] not in top]


def describe(index: int) -> str:
    return f"layer {index} ({LAYERS[index][0]})"


def fail_on(violations: list[str], rule: str) -> None:
    if violations:
        pytest.fail(f"{rule}:\n  " + "\n  ".join(violations), pytrace=False)


# --- the scanner sees what it must see ------------------------------------------------------


def test_the_scanner_reads_imports_of_every_kind() -> None:
    edges = {(i.module, i.target) for i in all_imports()}
    assert ("botkit.runtime.workers", "botkit.runtime.outbox") in edges  # from ... import ...
    assert ("botkit.wire.events", "botkit.codec") in edges  # from botkit import codec
    assert ("botkit.store.sqlite", "botkit.store.base") in edges
    assert ("botkit.tools.cli", "botkit.tools.devserver") in edges  # inside a function
    assert ("botkit.fake.provider", "uvicorn") in edges  # inside a function


def test_every_module_has_a_place_in_the_layer_table() -> None:
    units = {unit_of(module_name(path)) for path in module_files()} - {"botkit"}
    missing = sorted(units - set(LAYER_OF))
    fail_on(
        [f"botkit.{unit}: add it to LAYERS in tests/test_layers.py" for unit in missing],
        "modules without a layer",
    )


# --- direction ----------------------------------------------------------------------------


def test_no_module_imports_a_module_above_it() -> None:
    violations = []
    for found in botkit_imports():
        if found.type_only:
            continue
        importer, target = unit_of(found.module), unit_of(found.target)
        if importer == "botkit":
            continue  # the package re-exports from every layer
        if target == "botkit":
            violations.append(
                f"{found.where}: {found.module} imports the botkit package itself; "
                "import from the module that defines the name"
            )
            continue
        mine, theirs = LAYER_OF.get(importer), LAYER_OF.get(target)
        if mine is None or theirs is None or importer == target:
            continue  # reported by test_every_module_has_a_place_in_the_layer_table
        if theirs > mine or (theirs == mine and mine != 0):  # the leaves are one package
            violations.append(
                f"{found.where}: {found.module} in {describe(mine)} imports {found.target} "
                f"in {describe(theirs)}; a package may import only the layers below its own"
            )
    fail_on(violations, "imports against the direction leaves -> wire -> ... -> tools")


def test_the_leaves_import_no_other_botkit_module() -> None:
    violations = [
        f"{found.where}: botkit.{unit_of(found.module)} imports {found.target}; it is a leaf"
        for found in botkit_imports()
        if unit_of(found.module) in LEAF_ONLY
    ]
    fail_on(violations, "leaf modules with botkit imports")


def test_botkit_modules_import_each_other_without_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for found in botkit_imports():
        if not found.type_only and found.target != found.module:
            graph.setdefault(found.module, set()).add(found.target)
    cycles: list[str] = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        if node in path:
            cycles.append(" -> ".join([*path[path.index(node) :], node]))
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is not a cycle.
            if not target.startswith(node + "."):
                visit(target, [*path, node], done)
        done.add(node)

    done: set[str] = set()
    for module in sorted(graph):
        visit(module, [], done)
    fail_on(sorted(set(cycles)), "import cycles")


# --- third-party libraries ----------------------------------------------------------------


def test_each_owned_library_is_imported_only_by_its_owner() -> None:
    violations = []
    for found in third_party_imports():
        library = found.target.split(".")[0]
        owners = OWNERS.get(library)
        if owners is not None and found.module not in owners:
            violations.append(
                f"{found.where}: {found.module} imports {library}, which only "
                f"{', '.join(sorted(owners))} may import"
            )
    fail_on(violations, "third-party libraries imported outside their owning module")


def test_the_leaves_and_the_wire_use_only_the_stdlib_and_their_own_libraries() -> None:
    pure = LAYERS[0][1] | LAYERS[1][1]
    violations = [
        f"{found.where}: {found.module} imports {found.target}; the leaves and the wire use "
        "only the stdlib (JSON goes through botkit.codec, phone numbers through botkit.wire.phone)"
        for found in third_party_imports()
        if unit_of(found.module) in pure
        and found.module not in OWNERS.get(found.target.split(".")[0], frozenset())
    ]
    fail_on(violations, "third-party imports in pure modules")


def test_every_third_party_import_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set()
    extras = [
        r for name, rs in project["optional-dependencies"].items() if name != "dev" for r in rs
    ]
    for requirement in [*project["dependencies"], *extras]:
        name = requirement.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        declared.add(IMPORT_NAMES.get(name.strip(), name.strip().replace("-", "_")))
    violations = [
        f"{found.where}: {found.module} imports {found.target}, not in "
        "[project].dependencies of pyproject.toml"
        for found in third_party_imports()
        if found.target.split(".")[0] not in declared
        and found.module not in HOSTED.get(found.target.split(".")[0], ())
    ]
    fail_on(violations, "undeclared third-party imports")


# --- the fake provider shares nothing ------------------------------------------------------


def test_the_fake_provider_imports_only_botkit_types() -> None:
    violations = [
        f"{found.where}: {found.module} imports {found.target}; it may import only "
        f"{', '.join(sorted(FAKE_BOTKIT))} from botkit (a bug in shared code would pass "
        "on both sides of the wire)"
        for found in botkit_imports()
        if unit_of(found.module) == FAKE
        and unit_of(found.target) != FAKE
        and found.target not in FAKE_BOTKIT
    ]
    fail_on(violations, "the fake GoSendAPI shares code with botkit")


def test_the_fake_provider_uses_only_the_stdlib_starlette_httpx_and_uvicorn() -> None:
    violations = [
        f"{found.where}: {found.module} imports {found.target}"
        for found in third_party_imports()
        if unit_of(found.module) == FAKE and found.target.split(".")[0] not in FAKE_THIRD_PARTY
    ]
    fail_on(violations, "the fake GoSendAPI's third-party imports")
