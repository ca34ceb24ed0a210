"""``ua-autotag doctor``: configuration with sources, carriers, integrations; never a secret."""

from __future__ import annotations

import json

from tests.cli.conftest import UA, clean_env, cli, one_line_error
from ua_autotag.catalog import CATALOG
from ua_autotag.engine import patcher

SECRETS = {
    "DATABRICKS_TOKEN": "dapi0123456789abcdef0123456789abcdef",
    "PGPASSWORD": "pg-s3cret-pw",
    "DATABRICKS_CLIENT_SECRET": "oauth-s3cret",
}

#: every integration carrying application_name (the 63-byte limit)
POSTGRES = tuple(n for n, e in CATALOG.items() if e.carrier == "application_name")


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
    spec = patcher.load_spec("psycopg")
    psycopg = rows["psycopg"]
    assert psycopg["status"] == "would patch"
    assert psycopg["installed"] == patcher.installed_version(spec.distributions)
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
                             UA_AUTOTAG_DISABLED_INTEGRATIONS=",".join(POSTGRES))
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
    proc = cli("doctor")  # no process default is no error (a library must not set one)
    assert proc.returncode == 0, proc.stdout
    assert "configuration: no process default" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "result: ok (exit 0)"


def test_doctor_never_prints_secrets() -> None:
    for args in (["doctor"], ["doctor", "--json"]):
        proc = cli(*args, env=clean_env(UA_AUTOTAG_USER_AGENT=UA, **SECRETS,
                                        UA_AUTOTAG_REST_HOSTS="token=leak-me-123"))
        for secret in (*SECRETS.values(), "leak-me-123"):
            assert secret not in proc.stdout + proc.stderr


OTHER = "OtherIsv_Elsewhere/9"


def test_doctor_option_wins_and_the_environment_stays_visible() -> None:
    """Bug: ``doctor --user-agent X`` with ``UA_AUTOTAG_USER_AGENT=Y`` reported X as from
    the environment and hid Y."""
    proc = cli("doctor", "--user-agent", UA, "--json",
               env=clean_env(UA_AUTOTAG_USER_AGENT=OTHER))
    report = json.loads(proc.stdout)
    assert report["configuration"]["user_agent"] == UA
    assert report["configuration"]["sources"]["user_agent"] == "--user-agent"
    assert report["environment"]["UA_AUTOTAG_USER_AGENT"] == OTHER
    text = cli("doctor", "--user-agent", UA, env=clean_env(UA_AUTOTAG_USER_AGENT=OTHER)).stdout
    assert f"user_agent  {UA}" in text and "(--user-agent)" in text
    assert f"UA_AUTOTAG_USER_AGENT={OTHER}" in text


def test_doctor_does_not_instrument_its_own_process() -> None:
    """``python -m ua_autotag doctor`` with the value in the environment reports, and
    tags nothing itself (its children are the ones tagged)."""
    import subprocess
    import sys

    env = clean_env(UA_AUTOTAG_USER_AGENT=UA)
    proc = subprocess.run([sys.executable, "-m", "ua_autotag", "doctor", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["products"]["default"] is None
    assert report["configuration"]["user_agent"] == UA  # configured, just not applied here
    # the control: any other program with the same environment is instrumented at import
    control = subprocess.run(
        [sys.executable, "-c", "import ua_autotag; print(ua_autotag.is_instrumented())"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert control.stdout.strip() == "True"


PRODUCT_MODULE = (
    "import ua_autotag\n"
    "ua_autotag.instrument({value!r}, packages=[__name__])\n"
)


def test_doctor_import_lists_products_and_checks_their_package_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "acmepartner_datengproduct.py").write_text(PRODUCT_MODULE.format(value=UA))
    (tmp_path / "acme_tools.py").write_text(PRODUCT_MODULE.format(value="AcmePartner_Tools/1"))
    env = clean_env(PYTHONPATH=str(tmp_path), UA_AUTOTAG_USER_AGENT=UA)
    args = ("doctor", "--import", "acmepartner_datengproduct", "--import", "acme_tools")
    proc = cli(*args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    products = {p["user_agent"]: p for p in json.loads(proc.stdout)["products"]["products"]}
    good, bad = products[UA], products["AcmePartner_Tools/1"]
    assert good["packages"] == ["acmepartner_datengproduct"]
    assert good["origin"] == f"{tmp_path / 'acmepartner_datengproduct.py'}:2"
    assert good["mode"] == "append" and good["advice"] == []
    assert len(bad["advice"]) == 1 and "acmepartner_tools" in bad["advice"][0]
    text = cli(*args, env=env)
    assert text.returncode == 0  # advice, not an error
    assert "advice: package 'acme_tools'" in text.stdout
    assert "process default: none" in text.stdout


def test_naming_rule_ignores_case_and_separators() -> None:
    from ua_autotag.cli.doctor import naming_advice

    for package in ("acmepartner_datengproduct", "AcmePartner.DatEngProduct.core",
                    "acme_partner_dat_eng_product", "acmepartner.datengproduct"):
        assert naming_advice(UA, [package]) == [], package
    assert naming_advice(UA, ["acme_dateng"]) != []
    assert naming_advice(UA, ["acmepartner"]) != []


def test_doctor_import_error_is_one_line() -> None:
    proc = cli("doctor", "--import", "no_such_module_ua_autotag")
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert "--import no_such_module_ua_autotag" in line


def test_doctor_reports_a_partial_integration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "acmepartner_datengproduct.py").write_text(
        "import psycopg\n"
        "del psycopg.AsyncConnection.connect\n" + PRODUCT_MODULE.format(value=UA)
    )
    env = clean_env(PYTHONPATH=str(tmp_path), UA_AUTOTAG_USER_AGENT=UA)
    proc = cli("doctor", "--import", "acmepartner_datengproduct", "--json", env=env)
    row = next(r for r in json.loads(proc.stdout)["integrations"] if r["integration"] == "psycopg")
    assert row["status"] == "partial"
    assert row["missing"] == ["psycopg.AsyncConnection.connect"]
    text = cli("doctor", "--import", "acmepartner_datengproduct", env=env).stdout
    assert "psycopg            partial: psycopg.AsyncConnection.connect not found" in text


def test_doctor_lists_the_runtime_hooks() -> None:
    _, report = _doctor(UA_AUTOTAG_USER_AGENT=UA, UA_AUTOTAG_DISABLED_INTEGRATIONS="node")
    hooks = {r["runtime"]: r for r in report["runtimes"]}
    assert set(hooks) == {"node", "java"}
    assert hooks["node"]["would_add"] is False and hooks["node"]["reason"] == "disabled"
    assert hooks["java"]["variable"] == "JAVA_TOOL_OPTIONS"
    text = cli("doctor", env=clean_env(UA_AUTOTAG_USER_AGENT=UA)).stdout
    assert "runtime hooks" in text and "NODE_OPTIONS += --require" in text


def test_doctor_lists_each_wrapped_attribute_once() -> None:
    """The SDK's client constructors both tag and pin: one line each, both roles on it;
    the set-up step says what it does."""
    text = cli("doctor", env=clean_env(UA_AUTOTAG_USER_AGENT=UA)).stdout
    wraps = [line.strip() for line in text.splitlines() if line.strip().startswith("wraps ")]
    names = [line.split()[1] for line in wraps]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    client = next(w for w in wraps if w.startswith("wraps databricks.sdk.WorkspaceClient.__init__"))
    assert "connect span" in client and "pins its creator" in client
    also = next(line for line in text.splitlines() if "_setup" in line)
    assert "descriptors" in also and "setup _setup" not in text


# --------------------------------------------------------------------------- a library's CI


def _library(tmp_path, name: str, value: str, packages: str = "[__name__]") -> None:  # type: ignore[no-untyped-def]
    (tmp_path / f"{name}.py").write_text(
        f"import ua_autotag\nua_autotag.instrument({value!r}, packages={packages})\n"
    )


def test_doctor_import_is_a_library_ci_check(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A valid library passes with no process default; an over-long value, a package claimed
    by two products, or a module registering nothing fail (exit 1) with the reason."""
    _library(tmp_path, "acmepartner_datengproduct", UA)
    _library(tmp_path, "acmepartner_toolong", "AcmePartner_DatEngProduct/3.5-" + "x" * 40)
    _library(tmp_path, "globex_loader", "Globex_Loader/1.0",
             "[__name__, 'acmepartner_datengproduct']")
    (tmp_path / "plain_module.py").write_text("X = 1\n")
    env = clean_env(PYTHONPATH=str(tmp_path))

    proc = cli("doctor", "--import", "acmepartner_datengproduct", "--json", env=env)
    assert proc.returncode == 0, proc.stdout
    report = json.loads(proc.stdout)
    assert report["problems"] == []
    assert report["configuration"]["status"] == "no process default"
    product = report["products"]["products"][0]
    carriers = {c["carrier"]: c for c in product["carriers"]}
    assert carriers["application_name"]["status"] == "ok" and carriers["application_name"]["in_use"]
    psycopg = next(r for r in report["integrations"] if r["integration"] == "psycopg")
    assert psycopg["status"] == "would patch"

    proc = cli("doctor", "--import", "acmepartner_toolong", env=env)
    assert proc.returncode == 1
    assert "result: 1 problem(s) (exit 1):" in proc.stdout
    reason = proc.stdout.split("result:")[1]
    assert "acmepartner_toolong" in reason and "63-byte limit" in reason
    assert "disabled=[...] in its instrument() call" in reason  # not the customer's env

    proc = cli("doctor", "--import", "acmepartner_datengproduct", "--import", "globex_loader",
               "--json", env=env)
    assert proc.returncode == 1
    (problem,) = json.loads(proc.stdout)["problems"]
    assert "already claimed by AcmePartner_DatEngProduct/3.5" in problem
    assert "Globex_Loader/1.0" in problem

    proc = cli("doctor", "--import", "plain_module", env=env)
    assert proc.returncode == 1
    assert "no product registered" in proc.stdout


def test_doctor_checks_a_product_against_carriers_the_environment_switched_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The customer's UA_AUTOTAG_DISABLED_INTEGRATIONS lets an over-long value register here,
    but it would fail wherever that is not set: the library check still fails."""
    _library(tmp_path, "acmepartner_toolong", "AcmePartner_DatEngProduct/3.5-" + "x" * 40)
    from ua_autotag.catalog import CATALOG

    postgres = ",".join(n for n, e in CATALOG.items() if e.carrier == "application_name")
    env = clean_env(PYTHONPATH=str(tmp_path), UA_AUTOTAG_DISABLED_INTEGRATIONS=postgres)
    proc = cli("doctor", "--import", "acmepartner_toolong", "--json", env=env)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    (problem,) = report["problems"]
    assert problem.startswith("AcmePartner_DatEngProduct/3.5-x") and "application_name" in problem
    # and the product shows where each of its settings came from
    options = report["products"]["products"][0]["options"]
    assert options["disabled"]["source"] == "env UA_AUTOTAG_DISABLED_INTEGRATIONS"
    assert options["mode"] == {"value": "append", "source": "default"}
