"""``ua-autotag doctor``: configuration with sources, carriers, integrations; never a secret."""

from __future__ import annotations

import json

from tests.cli.conftest import UA, clean_env, cli
from ua_autotag.engine import patcher as registry

SECRETS = {
    "DATABRICKS_TOKEN": "dapi0123456789abcdef0123456789abcdef",
    "PGPASSWORD": "pg-s3cret-pw",
    "DATABRICKS_CLIENT_SECRET": "oauth-s3cret",
}


def _doctor(**env: str) -> tuple:
    proc = cli("doctor", "--json", env=clean_env(**env))
    return proc.returncode, json.loads(proc.stdout)


def test_doctor_reports_values_and_where_they_came_from() -> None:
    status, report = _doctor(UA_AUTOTAG_USER_AGENT=UA, UA_AUTOTAG_MODE="replace",
                             UA_AUTOTAG_DISABLED_INTEGRATIONS="asyncpg")
    assert status == 0
    conf = report["configuration"]
    assert conf["status"] == "ok"
    assert conf["user_agent"] == UA
    assert conf["mode"] == "replace"
    assert conf["sources"]["user_agent"] == "env UA_AUTOTAG_USER_AGENT"
    assert conf["sources"]["mode"] == "env UA_AUTOTAG_MODE"
    assert conf["sources"]["spans"] == "default"
    assert conf["disabled"] == ["asyncpg"]


def test_doctor_integrations_show_version_range_and_patches() -> None:
    _, report = _doctor(UA_AUTOTAG_USER_AGENT=UA, UA_AUTOTAG_DISABLED_INTEGRATIONS="asyncpg")
    rows = {r["integration"]: r for r in report["integrations"]}
    spec = registry.load_spec("psycopg")
    psycopg = rows["psycopg"]
    assert psycopg["status"] == "would patch"
    assert psycopg["installed"] == registry.installed_version(spec.distributions)
    assert psycopg["supported"] == spec.supported
    assert psycopg["trigger"] == "psycopg"
    assert [p.split(" ")[0] for p in psycopg["patches"]] == [
        f"{p.module}.{p.path}" for p in spec.patches
    ]
    assert rows["asyncpg"]["status"] == "disabled"
    assert "UA_AUTOTAG_DISABLED_INTEGRATIONS" in rows["asyncpg"]["reason"]


def test_doctor_checks_each_carrier_limit() -> None:
    long_ua = "AcmePartner_" + "D" * 60 + "/3.5"  # 76 bytes: over application_name's 63
    status, report = _doctor(UA_AUTOTAG_USER_AGENT=long_ua)
    assert status == 1
    assert report["configuration"]["status"] == "invalid"
    assert "63-byte" in report["configuration"]["error"]

    # with every PostgreSQL integration off the value is usable; the carrier says why not there
    status, report = _doctor(UA_AUTOTAG_USER_AGENT=long_ua,
                             UA_AUTOTAG_DISABLED_INTEGRATIONS="psycopg,psycopg2,asyncpg")
    assert status == 0
    carriers = {c["carrier"]: c for c in report["carriers"]}
    assert carriers["application_name"]["status"] == "too long"
    assert carriers["application_name"]["in_use"] is False
    assert carriers["http-user-agent"]["status"] == "ok"
    assert carriers["http-user-agent"]["bytes"] == len(long_ua)


def test_doctor_text_output_and_not_configured() -> None:
    proc = cli("doctor", env=clean_env(UA_AUTOTAG_USER_AGENT=UA))
    assert proc.returncode == 0
    assert f"user_agent  {UA}" in proc.stdout
    assert "(env UA_AUTOTAG_USER_AGENT)" in proc.stdout
    assert "wraps psycopg" in proc.stdout
    proc = cli("doctor")
    assert proc.returncode == 1
    assert "configuration: not configured" in proc.stdout


def test_doctor_never_prints_secrets() -> None:
    for args in (["doctor"], ["doctor", "--json"]):
        proc = cli(*args, env=clean_env(UA_AUTOTAG_USER_AGENT=UA, **SECRETS,
                                        UA_AUTOTAG_REST_HOSTS="token=leak-me-123"))
        for secret in (*SECRETS.values(), "leak-me-123"):
            assert secret not in proc.stdout + proc.stderr
