"""``driftcheck demo``: three real SSH hosts with planted drift, collected and reported.

Builds one staging and two production web hosts in the namespace lab, plants the
kind of drift that makes "works in staging" arguments (an older package, a package
only in staging, a hand-tuned sysctl, an edited config with a changed password, a
permission change, an app version bump, a production host that disagrees with its
twin), collects them over SSH with the real pipeline, writes the reports and tears
the lab down.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from driftcheck.collectors import REGISTRY
from driftcheck.errors import DriftcheckError
from driftcheck.findings import DriftReport
from driftcheck.inventory import load_inventory
from driftcheck.lab import Lab, LabError, LabHostSpec, available_versions, installed_version
from driftcheck.model import HostSnapshot
from driftcheck.output import write_atomically
from driftcheck.redact import Redactor
from driftcheck.reports import Format, render
from driftcheck.service import TREND_RUNS, choose_run, collect, run_report
from driftcheck.storage import Store

APP_CONF = "/etc/myapp/app.conf"
SECRETS_ENV = "/etc/myapp/secrets.env"
NGINX_CONF = "/etc/nginx/nginx.conf"
VERSION_FILE = "/opt/myapp/VERSION"
#: The planted passwords; tests check they appear nowhere driftcheck writes.
PLANTED_SECRETS = ("Pr0d-db-pass-9f2c", "St4ging-db-pass-71ab", "tok-prod-58e1d0")

NGINX = """\
user www-data;
worker_processes auto;
events {
    worker_connections 1024;
}
http {
    keepalive_timeout 65;
    server {
        listen 80;
        location / { proxy_pass http://127.0.0.1:8080; }
    }
}
"""


def app_conf(db_password: str, pool: int) -> str:
    """The application's INI config; staging's copy was edited by hand."""
    return (
        "[server]\nlisten = 127.0.0.1:8080\nworkers = 4\n\n"
        f"[database]\nhost = db.internal\nuser = myapp\npassword = {db_password}\n"
        f"pool_size = {pool}\n"
    )


@dataclass(frozen=True)
class Planted:
    """One difference the demo plants, as the report must show it."""

    collector: str
    key: str
    state: str
    story: str


def older_version(name: str) -> str:
    """A version of ``name`` other than the installed one, older if the archive has one."""
    installed = installed_version(name)
    others = [v for v in available_versions(name) if v != installed]
    if not others:
        raise LabError(
            f"apt knows no other version of {name} than {installed}; "
            "run apt-get update, or check the machine's apt sources"
        )
    if installed is None:
        return others[0]
    older = [
        v
        for v in others
        if subprocess.run(
            ["dpkg", "--compare-versions", v, "lt", installed], check=False
        ).returncode
        == 0
    ]
    return (older or others)[0]


def scenario() -> tuple[list[LabHostSpec], list[Planted]]:
    """The demo hosts and the drift planted in them."""
    tzdata = older_version("tzdata")
    hello = available_versions("hello")
    if not hello:
        raise LabError("apt knows no version of the 'hello' package; run apt-get update")
    prod_files = {
        NGINX_CONF: NGINX,
        APP_CONF: app_conf(PLANTED_SECRETS[0], 20),
        SECRETS_ENV: f"API_TOKEN={PLANTED_SECRETS[2]}\n",
        VERSION_FILE: "2.4.1\n",
    }
    prod_modes = {APP_CONF: 0o640, SECRETS_ENV: 0o600}
    specs = [
        LabHostSpec("prod-web1", "production", files=prod_files, file_modes=prod_modes),
        LabHostSpec(
            "prod-web2",
            "production",
            files=prod_files,
            file_modes=prod_modes,
            sysctls={"net.ipv4.tcp_keepalive_time": "600"},
        ),
        LabHostSpec(
            "stg-web1",
            "staging",
            files={
                **prod_files,
                APP_CONF: app_conf(PLANTED_SECRETS[1], 5),
                VERSION_FILE: "2.5.0-rc1\n",
            },
            file_modes={APP_CONF: 0o640, SECRETS_ENV: 0o644},
            packages={"tzdata": tzdata, "hello": hello[0], "less": None},
        ),
    ]
    planted = [
        Planted("packages", "tzdata", "changed", f"staging runs tzdata {tzdata}"),
        Planted("packages", "hello", "extra", "a package installed only in staging"),
        Planted("packages", "less", "missing", "a package removed from staging"),
        Planted("sysctl", "net.core.somaxconn", "changed", "tuned by hand in staging after run 1"),
        Planted(
            "sysctl",
            "net.ipv4.tcp_keepalive_time",
            "inconsistent",
            "prod-web2 disagrees with its twin",
        ),
        Planted(
            "files",
            f"{APP_CONF}#database.password",
            "changed",
            "password edited in staging (compared by keyed hash, never shown)",
        ),
        Planted(
            "files", f"{APP_CONF}#database.pool_size", "changed", "pool size edited in staging"
        ),
        Planted("files", SECRETS_ENV, "changed", "world-readable in staging (0644)"),
        Planted("apps", "myapp", "changed", "staging runs 2.5.0-rc1"),
    ]
    return specs, planted


#: The sysctl changed by hand between the demo's two runs.
LATE_CHANGE = "net.core.somaxconn=1024"


def collect_settings() -> dict[str, object]:
    """What the demo inventory collects besides the built-in collectors."""
    return {"files": [NGINX_CONF, APP_CONF, SECRETS_ENV], "apps": {"myapp": f"cat {VERSION_FILE}"}}


def default_output_dir() -> Path:
    """A new folder in the current directory, named by the time of the run."""
    return Path(f"driftcheck-demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}")


def run_demo(
    output: Path, say: Callable[[str], None], on_host: Callable[[HostSnapshot], None]
) -> tuple[DriftReport, list[Planted]]:
    """Build the lab, collect, write reports into ``output``; always tear the lab down."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DriftcheckError(f"{output}: cannot create the demo folder ({exc.strerror})") from None
    say("preparing the planted drift (an older tzdata and 'hello' come from Debian's archive)")
    specs, planted = scenario()
    with Lab() as lab:
        say(
            f"building {len(specs)} SSH hosts on 127.0.0.1 (lab {lab.lab_id}): "
            + ", ".join(f"{s.name} ({s.environment})" for s in specs)
        )
        lab.up(specs)
        inventory_path = output / "inventory.yaml"
        inv_data = lab.inventory(collect_settings())
        # The lab's key and known_hosts vanish with the lab; the inventory stays as
        # an example of what a real one looks like.
        inventory_path.write_text(
            "# Written by 'driftcheck demo' for its throw-away lab hosts.\n"
            + yaml.safe_dump(inv_data, sort_keys=False)
        )
        inventory = load_inventory(inventory_path)
        store = Store(f"sqlite:///{(output / 'driftcheck.db').resolve()}")
        redactor = Redactor.from_key_file(output / "hmac.key")
        say("run 1: collecting over SSH (one round trip per host)")
        collect(inventory, store, redactor, on_host=on_host, collectors=REGISTRY)
        # What history is for: a change by hand between two nightly runs.
        say(f"meanwhile, by hand on stg-web1: sysctl -w {LATE_CHANGE}")
        lab.exec("stg-web1", ["sysctl", "-q", "-w", LATE_CHANGE])
        say("run 2: collecting again")
        collect(inventory, store, redactor, on_host=on_host, collectors=REGISTRY)
        report = run_report(inventory, store, choose_run(inventory, store), trend=TREND_RUNS)
        store.close()
    write_atomically(output / "report.html", render(report, Format.HTML))
    write_atomically(output / "report.json", render(report, Format.JSON))
    return report, planted
