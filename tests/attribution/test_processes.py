"""Issue 15 in fresh interpreters: registration at import time, import order, the process
default from the environment and from the launcher, a package claimed twice at import,
forked and spawned workers. Each scenario runs ``scenario.py`` (written next to the
product packages) in a new ``python``, which prints its results as JSON; the results are
what the peers received (``pg_stat_activity.application_name``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from tests import pg
from tests.attribution.conftest import ACME, DEFAULT, GLOBEX, write_world

SCENARIO = '''\
"""One attribution scenario in a fresh interpreter; prints JSON."""
import json
import sys

def main():
    DSN = sys.argv[1]
    STEPS = sys.argv[2].split(",")
    out = {"errors": {}}

    for step in STEPS:
        if step == "client":
            import psycopg  # noqa: F401  (the client before or after the products)
        elif step == "products":
            import acme_dateng
            import globex_loader
        elif step == "rogue":
            try:
                import rogue_lib  # noqa: F401  claims acme_dateng for another product
            except Exception as exc:
                out["errors"]["rogue"] = [type(exc).__name__, str(exc)]
        elif step == "connect":
            import acme_dateng.ops
            import customer_app
            import globex_loader.ops

            out["acme"] = acme_dateng.ops.psycopg_name(DSN)
            out["globex"] = globex_loader.ops.psycopg_name(DSN)
            out["customer"] = customer_app.psycopg_name(DSN)
            out["nested"] = acme_dateng.ops.call(globex_loader.ops.psycopg2_name, DSN)
            out["callback"] = acme_dateng.ops.call(customer_app.psycopg2_name, DSN)
        elif step in ("fork", "spawn"):
            import multiprocessing

            import acme_dateng.ops
            import customer_app
            import globex_loader.ops

            ctx = multiprocessing.get_context(step)
            with ctx.Pool(2) as pool:
                out[step] = {
                    "acme": pool.apply(acme_dateng.ops.psycopg_name, (DSN,)),
                    "globex": pool.apply(globex_loader.ops.psycopg2_name, (DSN,)),
                    "customer": pool.apply(customer_app.psycopg_name, (DSN,)),
                }
        elif step == "status":
            import ua_autotag

            status = ua_autotag.status()
            out["products"] = [p.as_dict() for p in status.products]
            out["default"] = status.default.user_agent if status.default else None
            out["psycopg"] = status["psycopg"].state

    print(json.dumps(out))


if __name__ == "__main__":  # spawned children import this file: nothing runs there
    main()
'''

ROGUE = '''\
import ua_autotag

ua_autotag.instrument("Rogue_Product/1.0", packages=["acme_dateng", __name__])
'''


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = write_world(tmp_path_factory.mktemp("attribution_processes"))
    (directory / "scenario.py").write_text(SCENARIO)
    (directory / "rogue_lib").mkdir()
    (directory / "rogue_lib" / "__init__.py").write_text(ROGUE)
    return directory


def run(
    root: Path,
    steps: List[str],
    env: Optional[Dict[str, str]] = None,
    launcher: Optional[List[str]] = None,
) -> Dict[str, Any]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UA_AUTOTAG_")
        and k not in ("PGAPPNAME", "SPARK_CONNECT_USER_AGENT", "PYTHONPATH")
    }
    clean["PYTHONPATH"] = str(root)
    clean.update(env or {})
    command = [sys.executable, str(root / "scenario.py"), pg.DSN, ",".join(steps)]
    if launcher is not None:
        command = [*launcher, "--", *command]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=clean, cwd=root, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def expect(out: Dict[str, Any], default: Optional[str]) -> None:
    assert out["acme"] == ACME
    assert out["globex"] == GLOBEX
    assert out["customer"] == (default or "")
    assert out["nested"] == GLOBEX  # A calls into B, B connects
    assert out["callback"] == ACME  # A runs the customer's callback


@pytest.mark.parametrize(
    "steps",
    [["client", "products", "connect", "status"], ["products", "client", "connect", "status"]],
    ids=["client-imported-first", "products-imported-first"],
)
@pytest.mark.parametrize("default", [None, DEFAULT], ids=["no-default", "env-default"])
def test_registration_at_import_in_either_import_order(
    pg_dsn: str, root: Path, steps: List[str], default: Optional[str]
) -> None:
    env = {"UA_AUTOTAG_USER_AGENT": default} if default else {}
    out = run(root, steps, env)
    expect(out, default)
    assert out["psycopg"] == "patched"
    assert out["default"] == default
    assert [(p["user_agent"], p["packages"]) for p in out["products"]] == [
        (ACME, ["acme_dateng"]),
        (GLOBEX, ["globex_loader"]),
    ]
    for product in out["products"]:
        package = product["packages"][0]
        assert product["origin"] == f"{root / package / '__init__.py'}:4"


def test_package_claimed_twice_at_import(pg_dsn: str, root: Path) -> None:
    out = run(root, ["products", "rogue", "connect", "status"])
    kind, message = out["errors"]["rogue"]
    assert kind == "ConfigurationError"
    assert ACME in message and "Rogue_Product/1.0" in message and "acme_dateng" in message
    expect(out, None)  # the two registered products are unaffected
    assert [p["user_agent"] for p in out["products"]] == [ACME, GLOBEX]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_forked_and_spawned_workers(pg_dsn: str, root: Path, method: str) -> None:
    """§4: in every process where the product's package is imported (a spawned child
    imports it again to unpickle the function, and registers again)."""
    out = run(root, ["products", method], {"UA_AUTOTAG_USER_AGENT": DEFAULT})
    assert out[method] == {"acme": ACME, "globex": GLOBEX, "customer": DEFAULT}
    out = run(root, ["products", method])
    assert out[method] == {"acme": ACME, "globex": GLOBEX, "customer": ""}


def _launcher() -> List[str]:
    found = shutil.which("ua-autotag", path=str(Path(sys.executable).parent))
    assert found, "the ua-autotag command is not installed next to this Python"
    return [found, "run", "--user-agent", DEFAULT]


def test_launcher_default_and_products(pg_dsn: str, root: Path) -> None:
    """The launcher sets the process default; products still tag only their own code."""
    out = run(root, ["products", "connect", "status"], launcher=_launcher())
    assert out["default"] == DEFAULT
    expect(out, DEFAULT)


def test_doctor_import_lists_both_products(root: Path) -> None:
    """§5: ``ua-autotag doctor --import PKG`` imports the products and lists them."""
    command = [
        _launcher()[0], "doctor", "--import", "acme_dateng", "--import", "globex_loader", "--json"
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    report = json.loads(proc.stdout)
    products = report["products"]["products"]
    assert [(p["user_agent"], p["packages"]) for p in products] == [
        (ACME, ["acme_dateng"]),
        (GLOBEX, ["globex_loader"]),
    ]
    assert products[0]["origin"] == f"{root / 'acme_dateng' / '__init__.py'}:4"
    # the partner guide's naming rule is advice, not an error: ``acme_dateng`` does not
    # spell <isv>_<product>, ``globex_loader`` does
    assert products[0]["advice"] and not products[1]["advice"]
