"""The README says what the code does: the supported-versions table against the catalog
and the integration specs, and what psql reports under the launcher (real psql)."""

from __future__ import annotations

import re
from pathlib import Path

from tests import pg
from tests.cli.conftest import UA, clean_env, cli
from ua_autotag.catalog import CATALOG
from ua_autotag.engine.patcher import load_spec

README = Path(__file__).resolve().parents[2] / "README.md"
CLIENTS = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def _table_rows(section: str) -> dict[str, tuple[str, str]]:
    """integration -> (client column, supported range) of the supported-versions table."""
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = (cells[0], cells[2].strip("`"))
    return rows


def _declared_only(section: str) -> dict[str, str]:
    """distribution -> range from "Declared but only tested at the installed version: ..."."""
    sentence = re.split(r"`\.\s", section[section.index("Declared but only tested") :])[0] + "`"
    return dict(re.findall(r"([\w.-]+) `([^`]+)`", sentence))


def test_readme_supported_versions_match_the_catalog_and_specs() -> None:
    section = _section("Supported versions")
    table, declared = _table_rows(section), _declared_only(section)
    by_dist = {CATALOG[n].distributions[0].lower(): n for n in CATALOG}
    declared_names = {by_dist[d.lower()]: r for d, r in declared.items()}
    assert set(table) | set(declared_names) == set(CATALOG)
    assert not set(table) & set(declared_names)
    for name, (client, supported) in table.items():
        assert supported == load_spec(name).supported, name
        assert CATALOG[name].distributions[0].lower() in client.lower(), (name, client)
    for name, supported in declared_names.items():
        assert supported == load_spec(name).supported, name


def test_psql_under_the_launcher_reports_the_tag_alone(pg_dsn: str) -> None:
    """docs/clients.md: psql reports the tag, not ``psql <tag>``: libpq prefers PGAPPNAME to the
    ``fallback_application_name=psql`` psql passes."""
    psql = ["psql", "-X", "-h", pg.HOST, "-p", str(pg.PORT), "-U", pg.USER, "-d", pg.DBNAME,
            "-Atc", pg.APPLICATION_NAME_SQL]
    import subprocess

    bare = subprocess.run(psql, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert bare.stdout.strip() == "psql"  # psql's own fallback, without us
    proc = cli("run", "--user-agent", UA, *psql)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == UA
    text = CLIENTS.read_text(encoding="utf-8")
    assert f"psql reports\n`{UA}`" in text
    assert f"`psql {UA}`" not in text


def test_readme_lists_every_extra_with_what_it_installs() -> None:
    """The README's extras table names every extra of pyproject.toml (but ``test``) and each
    distribution it installs, so a user can pick one per client."""
    import tomllib

    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    extras = {k: v for k, v in project["optional-dependencies"].items() if k != "test"}
    section = _section("Set up (fresh machine)")
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1].lower()
    assert set(rows) == set(extras), sorted(set(rows) ^ set(extras))
    for extra, requirements in extras.items():
        for requirement in requirements:
            name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
            if name != "ua-autotag":
                assert name in rows[extra], (extra, name)
    assert "depends on plain `ua-autotag`, no extra" in section
