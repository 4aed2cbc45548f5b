"""End to end over lab hosts across three runs, on SQLite and PostgreSQL: drift
introduced, changed and removed between the runs, then every history command.

Run 1: staging mirrors production (but for prod-web2's keepalive, waived).
By hand on stg-web1: net.core.somaxconn=1024, net.ipv4.ip_forward=1 (the kernel
flips the per-interface forwarding and all.accept_redirects with it) and the
app's pool_size edited. Run 2.
Then somaxconn=2048 and pool_size put back. Run 3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftcheck.lab import Lab, LabHostSpec
from tests.support.helpers import run_driftcheck
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.lab

APP = "/etc/myapp/app.ini"
RULES = {
    "ignore": [
        {"collector": "files", "key": f"{APP}#app.node", "reason": "each host names itself"}
    ],
    "waivers": [
        {
            "collector": "sysctl",
            "key": "net.ipv4.tcp_keepalive_time",
            "reason": "load test on prod-web2 until the new balancer",
            "owner": "bob",
            "expires": "2099-12-31",
        },
        {
            "collector": "sysctl",
            "key": "vm.no_such_key",
            "reason": "long gone",
            "owner": "carol",
            "expires": "2099-12-31",
        },
    ],
}


def app_ini(node: str, pool: int) -> str:
    return f"# myapp\n[app]\nnode = {node}\n[db]\nhost = db.internal\npool_size = {pool}\n"


@dataclass
class World:
    """What the three runs left behind, for one database."""

    tmp: Path
    inventory: Path
    db: str

    def run(self, *args: str) -> tuple[int, str, str]:
        proc = run_driftcheck(self.tmp, *args, "-i", str(self.inventory), "--db", self.db)
        return proc.returncode, proc.stdout, proc.stderr

    def json(self, *args: str) -> Any:
        code, out, err = self.run(*args, "-f", "json")
        assert code in (0, 1, 4, 5), err
        return json.loads(out)


def specs() -> list[LabHostSpec]:
    return [
        LabHostSpec("prod-web1", "production", files={APP: app_ini("prod-web1", 20)}),
        LabHostSpec(
            "prod-web2",
            "production",
            files={APP: app_ini("prod-web2", 20)},
            sysctls={"net.ipv4.tcp_keepalive_time": "600"},
        ),
        LabHostSpec("stg-web1", "staging", files={APP: app_ini("stg-web1", 20)}),
    ]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, World]]:
    tmp = tmp_path_factory.mktemp("history")
    with postgres_server() as pg, Lab(tmp / "lab") as lab:
        lab.up(specs())
        inv = lab.inventory({"files": [APP]})
        inv["rules"] = RULES
        (tmp / "inv.yaml").write_text(yaml.safe_dump(inv, sort_keys=False))
        worlds = {
            "sqlite": World(tmp, tmp / "inv.yaml", f"sqlite:///{tmp / 'dc.db'}"),
            "postgresql": World(tmp, tmp / "inv.yaml", pg),
        }

        def collect() -> None:
            for world in worlds.values():
                code, _, err = world.run("collect")
                assert code == 0, err

        collect()
        for setting in ("net.core.somaxconn=1024", "net.ipv4.ip_forward=1"):
            lab.exec("stg-web1", ["sysctl", "-q", "-w", setting])
        lab.write_file("stg-web1", APP, app_ini("stg-web1", 5))
        collect()
        lab.exec("stg-web1", ["sysctl", "-q", "-w", "net.core.somaxconn=2048"])
        lab.write_file("stg-web1", APP, app_ini("stg-web1", 20))
        collect()
        yield worlds


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, worlds: dict[str, World]) -> World:
    return worlds[request.param]


def runs(world: World) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = world.json("history")
    return listed


def by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["key"]: f for f in report["findings"]}


def test_history_lists_the_three_runs(world: World) -> None:
    listed = runs(world)
    assert [r["hosts_complete"] for r in listed] == [3, 3, 3]
    # Run 1: nothing but the waived keepalive; run 2: somaxconn, pool_size, forwarding.
    assert listed[0]["drift"] == 0 and listed[0]["accepted"] >= 2  # waived + ignored
    assert listed[1]["drift"] > listed[2]["drift"] > 0
    code, out, _ = world.run("history")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["run", "started", "hosts"]


def test_since_and_causes_in_the_latest_report(world: World) -> None:
    first, second, third = runs(world)
    report = world.json("report")
    keys = by_key(report)
    stg_at = {h["name"]: h["collected_at"] for h in report["hosts"]}["stg-web1"]
    # Changed again in run 3: new in this run, though drift since run 2.
    somaxconn = keys["net.core.somaxconn"]
    assert (somaxconn["values"]["stg-web1"], somaxconn["age"]) == ("2048", "new in this run")
    assert somaxconn["since"] == stg_at
    forward = keys["net.ipv4.ip_forward"]
    assert forward["runs_held"] == 2 and forward["since"] >= second["started_at"]
    assert forward["since"] < third["started_at"]
    assert f"{APP}#db.pool_size" not in keys  # put back: no longer drift
    (cause,) = [c for c in report["causes"] if c["key"] == "net.ipv4.ip_forward"]
    members = {f["key"] for f in report["findings"] if f.get("cause") == cause["id"]}
    assert {"net.ipv4.conf.all.forwarding", "net.ipv4.conf.all.accept_redirects"} <= members
    # The waived inconsistency: the odd production host is explained, and who accepted it.
    keepalive = keys["net.ipv4.tcp_keepalive_time"]
    assert keepalive["state"] == "waived" and keepalive["underlying_state"] == "inconsistent"
    assert keepalive["explanation"].startswith("prod-web2: set at runtime")
    assert keepalive["waiver"]["owner"] == "bob" and keepalive["runs_held"] == 3
    assert first["started_at"] <= keepalive["since"] < second["started_at"]


def test_the_report_as_it_was(world: World) -> None:
    second = runs(world)[1]
    by_run = world.json("report", "--run", str(second["run"]))
    by_time = world.json("report", "--at", second["finished_at"])
    for report in (by_run, by_time):
        keys = by_key(report)
        assert keys[f"{APP}#db.pool_size"]["values"]["stg-web1"] == "5"
        assert keys["net.core.somaxconn"]["values"]["stg-web1"] == "1024"
        assert report["run_started_at"] == second["started_at"]
    code, out, err = world.run("report", "--run", "9999")
    assert code == 2 and out == "" and err.count("\n") == 1 and "history" in err


def test_diff_two_hosts(world: World) -> None:
    code, out, err = world.run("diff", "prod-web2", "stg-web1", "-f", "json")
    assert code == 1, err
    report = json.loads(out)
    assert report["pair"] == {"reference": "prod-web2", "target": "stg-web1"}
    keys = by_key(report)
    assert keys[f"{APP}#app.node"]["state"] == "ignored"
    assert keys["net.core.somaxconn"]["values"] == {"prod-web2": "4096", "stg-web1": "2048"}
    assert "volatile differences skipped" in err
    code, out, _ = world.run("diff", "prod-web1", "stg-web1", "-c", "sysctl", "--key", "net.core.*")
    assert code == 1 and "net.core.somaxconn" in out and "ip_forward" not in out
    assert "stg-web1 (staging) compared with prod-web1 (production)" in out


def test_diff_a_whole_file_then_and_now(world: World) -> None:
    second = runs(world)[1]
    code, out, _ = world.run(
        "diff", "prod-web1", "stg-web1", "--file", APP, "--run", str(second["run"])
    )
    assert code == 1
    assert out.startswith(f"--- prod-web1:{APP}\n+++ stg-web1:{APP}\n")
    assert "-pool_size = 20\n+pool_size = 5\n" in out
    code, out, _ = world.run("diff", "prod-web1", "stg-web1", "--file", APP)
    assert code == 1 and "-node = prod-web1\n+node = stg-web1\n" in out
    assert "-pool_size" not in out and "+pool_size" not in out  # put back in run 3
    code, _, err = world.run("diff", "prod-web1", "stg-web1", "--file", "/etc/nope.conf")
    assert code == 4 and "incomplete" in err and err.count("\n") == 1


def test_show_an_earlier_run(world: World) -> None:
    first = runs(world)[0]
    code, out, _ = world.run("show", "stg-web1", "-c", "sysctl", "--run", str(first["run"]))
    assert code == 0
    assert "net.core.somaxconn\t4096" in out.splitlines()


def test_what_changed_on_staging(world: World) -> None:
    _, second, third = runs(world)
    found = world.json("changes", "--host", "stg-web1", "--since", "1d")
    seen = {(c["key"], c["before"], c["after"], c["run"]) for c in found}
    assert {
        ("net.core.somaxconn", "4096", "1024", second["run"]),
        ("net.core.somaxconn", "1024", "2048", third["run"]),
        ("net.ipv4.ip_forward", "0", "1", second["run"]),
        (f"{APP}#db.pool_size", "20", "5", second["run"]),
        (f"{APP}#db.pool_size", "5", "20", third["run"]),
    } <= seen
    sysctls = {c["key"] for c in found if c["collector"] == "sysctl"}
    assert all(k == "net.core.somaxconn" or "forward" in k or "redirects" in k for k in sysctls)
    # Without --since: what the latest run saw change.
    latest = world.json("changes", "--host", "stg-web1")
    assert {c["run"] for c in latest} == {third["run"]}
    production = world.json("changes", "--env", "production", "--since", "1d")
    assert not {c["key"] for c in production} & {"net.core.somaxconn", f"{APP}#db.pool_size"}


def test_waivers_listed_with_their_state(world: World) -> None:
    listed = {w["owner"]: w for w in world.json("waivers")}
    assert listed["bob"]["state"] == "active" and listed["bob"]["covers"] == 1
    assert listed["carol"]["stale"] is True and listed["carol"]["covers"] == 0
    code, out, _ = world.run("waivers")
    assert code == 0 and "active, stale" in out and "bob" in out


def test_text_markdown_and_html_show_age_causes_and_acceptance(world: World) -> None:
    second = runs(world)[1]
    code, text, _ = world.run("report", "-f", "text")
    assert code == 1
    assert "new in this run" in text and "findings of drift from" in text
    code, md, _ = world.run("report", "-f", "markdown")
    assert "| waived | role | hosts | accepted by |" in md and "owner bob" in md
    html = world.tmp / f"r-{world.db[:6]}.html"
    code, _, err = world.run("report", "--run", str(second["run"]), "-o", str(html))
    assert code == 1, err
    page = html.read_text()
    assert "<svg" in page and "Drift and incomplete findings over the last 2 runs" in page
    assert "Whole files" in page and f"prod-web1:{APP}" in page
    assert 'class="add">+pool_size = 5' in page


def test_prune_keeps_the_newest_runs_last(worlds: dict[str, World]) -> None:
    # Last in this module: it removes run 1 on both databases.
    for world in worlds.values():
        before = runs(world)
        code, _, err = world.run("prune", "--keep-runs", "2")
        assert code == 0 and f"removed 1 runs ({before[0]['run']}..{before[0]['run']})" in err
        assert [r["run"] for r in runs(world)] == [r["run"] for r in before[1:]]
        code, _, err = world.run("report", "--run", str(before[0]["run"]))
        assert code == 2 and "no such run" in err
        report = world.json("report")
        assert by_key(report)["net.ipv4.ip_forward"]["runs_held"] == 2
