"""Each fact has one home: the checks that keep it so."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from ua_autotag import settings
from ua_autotag.catalog import CATALOG
from ua_autotag.engine.patcher import load_spec
from ua_autotag.merge import CARRIERS

SRC = Path(settings.__file__).parent
VAR_NAME = re.compile(r"^UA_AUTOTAG_[A-Z0-9_]+$")


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_when_module_is_watched(name: str) -> None:
    """A patch applied when its own module is imported needs the catalog to watch that
    module, or it is never applied."""
    spec = load_spec(name)
    whens = {p.when for p in spec.patches if p.when is not None}
    assert whens <= set(CATALOG[name].watch), (name, whens - set(CATALOG[name].watch))


def _names_in(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and VAR_NAME.match(node.value)
    ]


def test_every_variable_name_is_declared_once() -> None:
    """options.py spells a variable name only where it is declared: in ``OPTIONS`` or as
    one of the named variables beyond them; everything else derives it (``VAR``), and
    settings.py spells none."""
    assert _names_in(ast.parse((SRC / "settings.py").read_text())) == []
    tree = ast.parse((SRC / "options.py").read_text())
    declared: set[int] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        if names & {"OPTIONS"} or any(n.endswith("_VAR") for n in names):
            declared.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    stray = [(line, value) for line, value in _names_in(tree) if line not in declared]
    assert stray == []
    assert set(settings.VAR.values()) == {o.env for o in settings.OPTIONS if o.env}


def test_every_variable_read_in_the_library_is_documented() -> None:
    """A ``UA_AUTOTAG_*`` name written in the engine, settings, merge rules or
    integrations is one of :data:`settings.ENV` (the README's table), or a name the
    launcher sets for its children (``UA_AUTOTAG_EXPORTED_*`` / ``_ORIGINAL_*``)."""
    files = [SRC / "__init__.py", SRC / "settings.py", SRC / "options.py", SRC / "ledger.py"]
    for folder in ("engine", "merge", "integrations"):
        files += sorted((SRC / folder).glob("*.py"))
    internal = ("UA_AUTOTAG_EXPORTED_", "UA_AUTOTAG_ORIGINAL_")
    unknown = [
        (path.name, line, value)
        for path in files
        for line, value in _names_in(ast.parse(path.read_text()))
        if value not in settings.ENV and not value.startswith(internal)
    ]
    assert unknown == []


def test_the_launcher_runtimes_and_commands_spell_no_variable_name() -> None:
    """The launcher's runtimes and the CLI commands use the names options.py declares
    (``VAR``, ``*_VAR``): a renamed variable cannot be missed there."""
    files = [SRC / "cli" / "run.py", SRC / "cli" / "doctor.py"]
    files += sorted((SRC / "runtimes").rglob("*.py"))
    spelled = [
        (path.name, line, value)
        for path in files
        for line, value in _names_in(ast.parse(path.read_text()))
    ]
    assert spelled == []


@pytest.mark.parametrize("name", sorted(CARRIERS))
def test_each_carrier_names_the_module_of_its_merge_rule(name: str) -> None:
    """Looking for a carrier (``application_name``) finds the module that merges into it."""
    carrier = CARRIERS[name]
    module = importlib.import_module(f"ua_autotag.merge.{carrier.module}")
    assert name in (module.__doc__ or "") or name.replace("-", " ") in (module.__doc__ or "")
