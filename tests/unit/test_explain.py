"""Explanations from evidence: edited after install, package version, runtime-only sysctl."""

from __future__ import annotations

from driftcheck.collectors import BY_NAME
from driftcheck.pipeline import build_report
from tests.support.helpers import inventory, snapshot

INV = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
COLLECTORS = [BY_NAME[n] for n in ("packages", "sysctl", "sysctl_config", "files", "config_origin")]


def why(prod: dict[str, dict[str, object]], stg: dict[str, dict[str, object]]) -> dict[str, str]:
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], prod),
        "stg1": snapshot("stg1", "staging", ["web"], stg),
    }
    findings = build_report(INV, snaps, COLLECTORS, "now").findings
    return {f.key: f.explanation for f in findings if f.state.value != "incomplete"}


def test_edited_after_install() -> None:
    base = {"packages": {"openssh-client": "1:9.2p1-2"}}
    got = why(
        {
            **base,
            "files": {"/etc/ssh/ssh_config#port": "22"},
            "config_origin": {
                "/etc/ssh/ssh_config": {"package": "openssh-client", "modified": False}
            },
        },
        {
            **base,
            "files": {"/etc/ssh/ssh_config#port": "2222"},
            "config_origin": {
                "/etc/ssh/ssh_config": {"package": "openssh-client", "modified": True}
            },
        },
    )
    assert got == {
        "/etc/ssh/ssh_config#port": "modified after install on stg1 (package openssh-client)"
    }


def test_comes_with_another_package_version() -> None:
    origin = {"/etc/x.conf": {"package": "foo", "modified": False}}
    got = why(
        {
            "packages": {"foo": "1.0"},
            "files": {"/etc/x.conf": {"sha256": "a"}},
            "config_origin": origin,
        },
        {
            "packages": {"foo": "1.1"},
            "files": {"/etc/x.conf": {"sha256": "b"}},
            "config_origin": origin,
        },
    )
    assert got["/etc/x.conf"] == "package foo version differs (prod1 1.0, stg1 1.1)"
    assert got["foo"] == ""  # the package finding itself needs no explanation


def test_sysctl_runtime_only_and_runtime_against_config() -> None:
    got = why(
        {
            "sysctl": {"net.core.somaxconn": "4096", "vm.swappiness": "60"},
            "sysctl_config": {"vm.swappiness": {"value": "60", "file": "/etc/sysctl.d/10.conf"}},
        },
        {
            "sysctl": {"net.core.somaxconn": "1024", "vm.swappiness": "10"},
            "sysctl_config": {"vm.swappiness": {"value": "60", "file": "/etc/sysctl.d/10.conf"}},
        },
    )
    # Two hosts, neither persisting it: which one was set at runtime cannot be told.
    assert got["net.core.somaxconn"] == (
        "stg1: not persisted in any sysctl config file, nor on prod1: one of them was set "
        "at runtime (a reboot restores the kernel's default)"
    )
    assert got["vm.swappiness"].startswith(
        "stg1: runtime 10 differs from 60 set in /etc/sysctl.d/10.conf"
    )


def test_no_claim_without_evidence() -> None:
    # sysctl_config was not collected: nothing may be said about persistence.
    got = why({"sysctl": {"net.core.somaxconn": "4096"}}, {"sysctl": {"net.core.somaxconn": "1"}})
    assert got["net.core.somaxconn"] == ""


INV3 = inventory(
    {
        "prod1": ("production", ["web"]),
        "prod2": ("production", ["web"]),
        "stg1": ("staging", ["web"]),
    }
)


def why3(sysctl: dict[str, str], config: dict[str, dict[str, object]] | None = None) -> str:
    """The explanation of net.ipv4.tcp_keepalive_time with prod1, prod2, stg1 at these
    values; ``config``: host -> its sysctl_config facts (none set it by default)."""
    snaps = {
        h: snapshot(
            h,
            "staging" if h.startswith("stg") else "production",
            ["web"],
            {
                "sysctl": {"net.ipv4.tcp_keepalive_time": value},
                "sysctl_config": (config or {}).get(h, {}),
            },
        )
        for h, value in sysctl.items()
    }
    findings = build_report(INV3, snaps, COLLECTORS, "now").findings
    (finding,) = [
        f for f in findings if (f.collector, f.key) == ("sysctl", "net.ipv4.tcp_keepalive_time")
    ]
    return finding.explanation


def test_inconsistent_explains_the_odd_reference_host_not_the_target() -> None:
    # The demo's case: prod2 was set at runtime; stg1 holds the default like prod1.
    got = why3({"prod1": "7200", "prod2": "600", "stg1": "7200"})
    assert got == (
        "prod2: set at runtime, not persisted in any sysctl config file (prod1, stg1 set it "
        "nowhere either and have 7200, the kernel's default)"
    )


def test_a_target_at_the_kernel_default_against_a_persisted_value() -> None:
    conf = {"value": "600", "file": "/etc/sysctl.d/90-keepalive.conf"}
    got = why3(
        {"prod1": "600", "prod2": "600", "stg1": "7200"},
        {
            "prod1": {"net.ipv4.tcp_keepalive_time": conf},
            "prod2": {"net.ipv4.tcp_keepalive_time": conf},
        },
    )
    assert got == (
        "stg1: not persisted in any sysctl config file (the kernel's default unless set at "
        "runtime); set persistently on prod1 in /etc/sysctl.d/90-keepalive.conf, prod2 in "
        "/etc/sysctl.d/90-keepalive.conf"
    )


def test_the_odd_host_persists_it_and_the_others_have_the_default() -> None:
    conf = {"value": "600", "file": "/etc/sysctl.d/90-keepalive.conf"}
    got = why3(
        {"prod1": "7200", "prod2": "7200", "stg1": "600"},
        {"stg1": {"net.ipv4.tcp_keepalive_time": conf}},
    )
    assert got == "stg1: persisted in /etc/sysctl.d/90-keepalive.conf"
