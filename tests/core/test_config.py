"""Configuration: arguments over environment, modes, version_from, strict, import activation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import ua_autotag
from ua_autotag import ConfigurationError, InvalidUserAgent
from ua_autotag.settings import resolve

UA = "AcmePartner_DatEngProduct/3.5"


def run_python(
    code: str, env: dict[str, str] | None = None, *args: str
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    return subprocess.run(
        [sys.executable, *args, "-c", code],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_arguments_win_over_environment() -> None:
    env = {
        "UA_AUTOTAG_USER_AGENT": "Env_Product/1.0",
        "UA_AUTOTAG_MODE": "keep",
        "UA_AUTOTAG_SPANS": "false",
    }
    s = resolve(UA, mode="replace", spans=True, environ=env)
    assert str(s.user_agent) == UA and s.mode == "replace" and s.spans is True
    assert s.sources["user_agent"] == "argument"
    s = resolve(environ=env)
    assert str(s.user_agent) == "Env_Product/1.0" and s.mode == "keep" and s.spans is False
    assert s.sources["mode"] == "env UA_AUTOTAG_MODE"


def test_isv_product_version_from_env_and_args() -> None:
    env = {"UA_AUTOTAG_ISV": "Acme", "UA_AUTOTAG_PRODUCT": "Tool", "UA_AUTOTAG_VERSION": "2.1"}
    assert str(resolve(environ=env).user_agent) == "Acme_Tool/2.1"
    assert str(resolve(isv="A", product="B", environ={}).user_agent) == "A_B"
    assert str(resolve("A_B/1", version="2", environ={}).user_agent) == "A_B/2"
    with pytest.raises(InvalidUserAgent, match="isv and product are both required"):
        resolve(isv="A", environ={})


def test_version_from_reads_installed_distribution_metadata() -> None:
    from importlib import metadata

    s = resolve("Acme_Tool", version_from="wrapt", environ={})
    assert s.user_agent.version == metadata.version("wrapt")
    assert "distribution wrapt" in s.sources["version"]
    env = {"UA_AUTOTAG_USER_AGENT": "Acme_Tool", "UA_AUTOTAG_VERSION_FROM": "packaging"}
    assert resolve(environ=env).user_agent.version == metadata.version("packaging")
    with pytest.raises(ConfigurationError, match="'no-such-dist-xyz' is not installed"):
        resolve("Acme_Tool", version_from="no-such-dist-xyz", environ={})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"UA_AUTOTAG_MODE": "merge"},
            "UA_AUTOTAG_MODE must be one of append, replace, keep: 'merge'",
        ),
        ({"UA_AUTOTAG_SPANS": "maybe"}, "UA_AUTOTAG_SPANS must be true or false: 'maybe'"),
        ({"UA_AUTOTAG_STRICT": "2"}, "UA_AUTOTAG_STRICT must be true or false: '2'"),
        (
            {"UA_AUTOTAG_DISABLED_INTEGRATIONS": "psycopg,nope"},
            "unknown disabled integrations: nope",
        ),
        ({"UA_AUTOTAG_USER_AGENT": "bad value"}, "UA_AUTOTAG_USER_AGENT: User-Agent"),
    ],
)
def test_bad_environment_values_are_reported_by_name(env: dict[str, str], message: str) -> None:
    env = {"UA_AUTOTAG_USER_AGENT": UA, **env} if "UA_AUTOTAG_USER_AGENT" not in env else env
    with pytest.raises(ConfigurationError) as info:
        resolve(environ=env)
    assert message in str(info.value)


def test_no_value_at_all_is_a_clear_error() -> None:
    with pytest.raises(InvalidUserAgent, match="no User-Agent configured"):
        resolve(environ={})


def test_value_too_long_for_postgres_fails_at_configuration_time() -> None:
    long_ua = "Acme_" + "P" * 60 + "/1.0"
    with pytest.raises(InvalidUserAgent, match="63-byte limit of PostgreSQL"):
        ua_autotag.instrument(long_ua)
    # without the PostgreSQL integrations the same value is fine
    from ua_autotag.catalog import CATALOG

    postgres = [n for n, e in CATALOG.items() if e.carrier == "application_name"]
    ua_autotag.instrument(long_ua, disabled=postgres)
    assert ua_autotag.is_instrumented()


def test_scoped_value_is_validated_on_entry() -> None:
    ua_autotag.instrument(UA)
    with pytest.raises(InvalidUserAgent, match="whitespace"), ua_autotag.user_agent("Other Prod/1"):
        pass
    with ua_autotag.user_agent("Other_Product/1") as scoped:
        assert str(scoped) == "Other_Product/1"


def test_status_reports_every_integration() -> None:
    rows = ua_autotag.status()
    assert rows and all(r.state == "disabled" for r in rows.values())
    ua_autotag.instrument(UA, disabled=["pyodbc"])
    rows = ua_autotag.status()
    assert rows["pyodbc"].state == "disabled"
    assert {r.state for r in rows.values()} <= {
        "patched",
        "waiting",
        "disabled",
        "unsupported",
        "failed",
    }


# --- import-time behaviour: a fresh interpreter each ------------------------------------------


def test_import_without_configuration_loads_nothing_heavy() -> None:
    """Only ua_autotag's own light modules are added to what the interpreter had."""
    code = (
        "import sys; before = set(sys.modules); import ua_autotag\n"
        "added = sorted(m for m in set(sys.modules) - before\n"
        "               if not m.startswith('ua_autotag') and m != '__future__')\n"
        "print(added)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # no wrapt, opentelemetry, client, logging, re, typing


def test_import_time_is_a_few_milliseconds() -> None:
    result = run_python("import ua_autotag", None, "-X", "importtime")
    rows = [line for line in result.stderr.splitlines() if line.rstrip().endswith("| ua_autotag")]
    assert rows, result.stderr
    cumulative_us = int(rows[-1].split("|")[1])
    # generous bound for a loaded CI machine with bytecode compilation disabled; the
    # benchmark (benchmarks/bench_import.py) measures the real figure (~1 ms)
    assert cumulative_us < 30_000, rows[-1]


def test_env_one_liner_instruments_at_import() -> None:
    result = run_python(
        "import ua_autotag; print(ua_autotag.is_instrumented(), "
        "ua_autotag.status()['psycopg'].state)",
        {"UA_AUTOTAG_USER_AGENT": UA},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "waiting"]


def test_bad_env_value_warns_and_does_not_instrument() -> None:
    result = run_python(
        "import ua_autotag; print(ua_autotag.is_instrumented())",
        {"UA_AUTOTAG_USER_AGENT": "Acme Product/1"},
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "False"
    assert "not instrumenting" in result.stderr and "whitespace" in result.stderr
    assert result.stderr.count("ua_autotag") == 1  # one warning


def test_bad_env_value_raises_when_strict() -> None:
    result = run_python(
        "import ua_autotag",
        {"UA_AUTOTAG_USER_AGENT": "Acme Product/1", "UA_AUTOTAG_STRICT": "true"},
    )
    assert result.returncode == 1
    assert "InvalidUserAgent" in result.stderr and "whitespace" in result.stderr


def test_log_level_from_env() -> None:
    result = run_python(
        "import logging, ua_autotag; print(logging.getLogger('ua_autotag').level)",
        {"UA_AUTOTAG_USER_AGENT": UA, "UA_AUTOTAG_LOG_LEVEL": "debug"},
    )
    assert result.stdout.strip() == str(10), result.stderr


def test_settings_is_exported_lazily() -> None:
    from ua_autotag.settings import Settings

    assert ua_autotag.Settings is Settings
    with pytest.raises(AttributeError):
        ua_autotag.nope  # noqa: B018


def test_options_are_declared_once() -> None:
    """instrument()'s keywords are exactly settings.OPTIONS, in order; resolve() takes
    those and nothing else."""
    import inspect

    from ua_autotag import settings

    names = [o.name for o in settings.OPTIONS]
    assert list(inspect.signature(ua_autotag.instrument).parameters) == names
    assert resolve(UA, **{n: None for n in names[1:] if n != "disabled"}).user_agent.text == UA
    with pytest.raises(TypeError, match="unknown options: colour"):
        resolve(UA, colour="blue")
    assert {o.env for o in settings.OPTIONS if o.env} <= set(settings.ENV)


def test_the_63_byte_error_names_the_option_as_every_value_error_does() -> None:
    """Same prefix for the process default and a library (``user_agent:``, not
    ``argument:``); a library is told to disable in its own call, not in the environment."""
    long = "AcmePartner_DatEngProduct/3.5-" + "x" * 40
    for packages in (None, ["some_lib"]):
        with pytest.raises(InvalidUserAgent) as info:
            resolve(long, packages=packages, environ={})
        assert str(info.value).startswith("user_agent: User-Agent is 70 bytes, over the 63-byte")
    assert "UA_AUTOTAG_DISABLED_INTEGRATIONS" not in str(info.value)
    assert "disabled=[...] in its instrument() call" in str(info.value)
    with pytest.raises(InvalidUserAgent, match=r"^isv/product: User-Agent is"):
        resolve(isv="AcmePartner", product="D" * 60, environ={})
    with pytest.raises(InvalidUserAgent, match=r"^UA_AUTOTAG_USER_AGENT: User-Agent is 70"):
        resolve(environ={"UA_AUTOTAG_USER_AGENT": long})


def test_which_environment_settings_reach_a_product() -> None:
    """The customer's kill switches (disabled), spans, strict and rest_hosts apply to a
    product; the mode does not (like the value, it is the process default's)."""
    env = {
        "UA_AUTOTAG_MODE": "replace",
        "UA_AUTOTAG_DISABLED_INTEGRATIONS": "psycopg",
        "UA_AUTOTAG_SPANS": "false",
        "UA_AUTOTAG_STRICT": "true",
        "UA_AUTOTAG_REST_HOSTS": "db.example.com",
    }
    product = resolve(UA, packages=["acme_dateng"], environ=env)
    assert product.mode == "append" and product.sources["mode"] == "default"
    assert "psycopg" in product.disabled and not product.enabled("psycopg")
    assert product.sources["disabled"] == "env UA_AUTOTAG_DISABLED_INTEGRATIONS"
    assert product.spans is False and product.strict is True
    assert product.rest_hosts == ("db.example.com",)
    assert resolve(UA, packages=["acme_dateng"], mode="keep", environ=env).mode == "keep"
    assert resolve(environ={**env, "UA_AUTOTAG_USER_AGENT": UA}).mode == "replace"


def test_status_names_the_variable_a_default_came_from() -> None:
    code = "import ua_autotag; print(ua_autotag.status().default.origin)"
    result = run_python(code, {"UA_AUTOTAG_USER_AGENT": UA})
    assert result.stdout.strip() == "env UA_AUTOTAG_USER_AGENT", result.stderr
    code = "import ua_autotag as u; u.instrument('A_B/1'); print(u.status().default.origin)"
    assert run_python(code).stdout.strip() == "<string>:1"
    code = (
        "import ua_autotag; ua_autotag.instrument('A_B/1', packages=['x']); "
        "print(ua_autotag.status().products[0].as_dict()['options']['mode'])"
    )
    result = run_python(code, {"UA_AUTOTAG_MODE": "keep"})
    assert result.stdout.strip() == "{'value': 'append', 'source': 'default'}", result.stderr
