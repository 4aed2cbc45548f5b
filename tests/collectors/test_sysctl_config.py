"""The sysctl_config collector: key normalisation (matching the sysctl collector's
keys exactly), the two appliers' rules, secret scrubbing, its shell under dash and
busybox ash (root and unprivileged, "not applicable" without any config), and
planted drift over SSH: a sysctl set at runtime only, a sysctl.d file that differs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.collectors.sysctl_config import PROCPS, SHELL, SYSTEMD, normalize_key, parse, scrub
from driftcheck.findings import State
from driftcheck.inventory import load_inventory
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import HostStatus, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.redact import REDACTED, Redactor
from driftcheck.runner import collect_all, now_iso
from driftcheck.script import NOT_APPLICABLE_RC

BUSYBOX = shutil.which("busybox")
SU = shutil.which("su") or "/bin/su"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
STD_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("net.core.somaxconn", "net.core.somaxconn"),
        ("net/core/somaxconn", "net.core.somaxconn"),
        ("  net.core.somaxconn\t", "net.core.somaxconn"),
        ("/net/core/somaxconn", "net.core.somaxconn"),
        # The first separator is the separator; the other one is a literal dot.
        ("net.ipv4.conf.eth0/100.rp_filter", "net.ipv4.conf.eth0/100.rp_filter"),
        ("net/ipv4/conf/eth0.100/rp_filter", "net.ipv4.conf.eth0/100.rp_filter"),
        ("net//core/./somaxconn", "net.core.somaxconn"),
        ("net.ipv4.conf.*.rp_filter", "net.ipv4.conf.*.rp_filter"),
        ("", ""),
    ],
)
def test_normalize_key(written: str, key: str) -> None:
    assert normalize_key(written) == key


def test_keys_match_the_sysctl_collector_exactly() -> None:
    """Every runtime key, written in either form, normalises to the sysctl collector's key."""
    out = subprocess.run(["sysctl", "-a"], capture_output=True, text=True, check=False).stdout
    keys = BY_NAME["sysctl"].parse(out).facts
    assert len(keys) > 100
    swap = str.maketrans("./", "/.")
    for key in keys:
        assert normalize_key(key) == key
        assert normalize_key(key.translate(swap)) == key


# ------------------------------------------------------------------ resolution


def section(applier: str, *files: tuple[str, str]) -> str:
    lines = [f"M\t{applier}"]
    for path, text in files:
        lines.append(f"F\t{path}")
        lines.extend("|" + line for line in text.splitlines())
    return "\n".join(lines) + "\n"


def test_file_name_precedence_and_order() -> None:
    raw = section(
        PROCPS,
        ("/usr/lib/sysctl.d/10-a.conf", "kernel.panic = 1\nvm.swappiness = 1"),
        ("/etc/sysctl.d/10-a.conf", "kernel.panic = 2"),  # hides the /usr/lib one
        ("/run/sysctl.d/05-b.conf", "vm.swappiness = 5"),
        ("/usr/local/lib/sysctl.d/20-c.conf", "vm.swappiness = 20"),
        ("/etc/sysctl.conf", "kernel.panic = 3"),
    )
    assert parse(raw).facts == {
        "kernel.panic": {"value": "3", "file": "/etc/sysctl.conf"},
        "vm.swappiness": {"value": "20", "file": "/usr/local/lib/sysctl.d/20-c.conf"},
    }
    # systemd-sysctl reads /etc/sysctl.conf only through a sysctl.d file.
    assert parse(raw.replace(PROCPS, SYSTEMD)).facts["kernel.panic"] == {
        "value": "2",
        "file": "/etc/sysctl.d/10-a.conf",
    }


def test_unlisted_directories_and_names_are_ignored() -> None:
    raw = section(
        PROCPS,
        ("/etc/sysctl.d/README", "kernel.panic = 1"),
        ("/opt/sysctl.d/10-x.conf", "kernel.panic = 2"),
        ("/etc/sysctl.d/10-y.conf", "kernel.panic = 3"),
    )
    assert parse(raw).facts == {"kernel.panic": {"value": "3", "file": "/etc/sysctl.d/10-y.conf"}}


def test_masking_entries_claim_their_name() -> None:
    raw = (
        f"M\t{SYSTEMD}\nX\tmasked\t/etc/sysctl.d/50-x.conf\n"
        "X\tdirectory\t/run/sysctl.d/60-y.conf\nF\t/usr/lib/sysctl.d/50-x.conf\n|kernel.panic = 1\n"
        "F\t/usr/lib/sysctl.d/60-y.conf\n|vm.swappiness = 1\n"
    )
    assert parse(raw).facts == {}


def test_glob_exclusion_and_ignore_errors() -> None:
    text = (
        "net.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n"
        "-net.core.default_qdisc = fq\nvm.swappiness = 1\n-vm.swappiness\n"
    )
    systemd = parse(section(SYSTEMD, ("/usr/lib/sysctl.d/50-default.conf", text))).facts
    procps = parse(section(PROCPS, ("/usr/lib/sysctl.d/50-default.conf", text))).facts
    file = "/usr/lib/sysctl.d/50-default.conf"
    assert systemd["net.ipv4.conf.*.rp_filter"] == {"value": "2", "file": file}
    assert systemd["net.ipv4.conf.all.rp_filter"] == {"value": None, "file": file, "excluded": True}
    assert systemd["net.core.default_qdisc"] == {"value": "fq", "file": file, "ignore_errors": True}
    # systemd lets "-key" replace an assignment; procps still writes the assignment.
    assert systemd["vm.swappiness"] == {"value": None, "file": file, "excluded": True}
    assert procps["vm.swappiness"] == {"value": "1", "file": file}


def test_no_trailing_comments_and_garbage_lines() -> None:
    raw = section(
        PROCPS,
        (
            "/etc/sysctl.d/1.conf",
            "# c\n; c\nno equals here\n= 5\n-\nkernel.core_pattern = core # not a comment\n"
            "kernel.domainname =\n",
        ),
    )
    assert parse(raw).facts == {
        "kernel.core_pattern": {"value": "core # not a comment", "file": "/etc/sysctl.d/1.conf"},
        "kernel.domainname": {"value": "", "file": "/etc/sysctl.d/1.conf"},
    }


# ------------------------------------------------------------------ scrubbing


def test_scrub_redacts_secret_keys_in_every_form() -> None:
    redactor = Redactor(b"s" * 32)
    secret = "12345678-9abcdef0-12345678-9abcdef0"
    raw = (
        "M\tsysctl --system\nF\t/etc/sysctl.d/net_key.conf\n"
        f"|net.ipv4.tcp_fastopen_key = {secret}\n"
        f"|-net.ipv4.tcp_fastopen_key={secret}\n"
        f"|  net/ipv4/tcp_fastopen_key\t=\t{secret}  \n"
        "|kernel.keys.maxkeys = 200\n|net.core.somaxconn = 4096\n"
    )
    out = scrub(raw, redactor)
    assert secret not in out
    assert out.count("<redacted:") == 3
    assert "|kernel.keys.maxkeys = 200\n|net.core.somaxconn = 4096\n" in out
    assert "F\t/etc/sysctl.d/net_key.conf\n" in out  # headers untouched
    assert scrub(out, redactor) == out  # idempotent
    facts = parse(out).facts
    assert REDACTED.fullmatch(str(facts["net.ipv4.tcp_fastopen_key"]["value"]))
    # The same secret hashes the same way in the sysctl collector's runtime value.
    runtime = BY_NAME["sysctl"].scrub
    assert runtime is not None
    scrubbed = runtime(f"net.ipv4.tcp_fastopen_key = {secret}\n", redactor)
    assert str(facts["net.ipv4.tcp_fastopen_key"]["value"]) in scrubbed


# ------------------------------------------------------------------ the shell


def run_shell(shell: str, path: str, user: str | None = None) -> tuple[int, str, str]:
    argv = [shell, "-c", SHELL]
    if user:
        switch = 'PATH=$2 LC_ALL=C; export PATH LC_ALL; exec "$1" -c "$0"'
        argv = [SU, user, "-s", "/bin/sh", "-c", switch, SHELL, shell, path]
    proc = subprocess.run(
        argv,
        env={"LC_ALL": "C", "PATH": path},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return proc.returncode, proc.stdout.decode(errors="backslashreplace"), proc.stderr.decode()


@pytest.fixture
def busybox_dir(busybox_bin: str) -> str:
    """busybox applets for every tool the shell calls, where nobody can run them too."""
    return busybox_bin


def test_shell_on_dash_and_busybox_as_root_and_nobody(busybox_dir: str) -> None:
    rc, expected, _ = run_shell("/bin/dash", STD_PATH)
    assert rc == 0 and expected.startswith("M\t")
    assert parse(expected).facts
    for shell, path in ((f"{busybox_dir}/sh", busybox_dir), ("/bin/dash", STD_PATH)):
        for user in (None, "nobody"):
            assert run_shell(shell, path, user)[:2] == (0, expected), (shell, user)


def test_no_configuration_at_all_is_not_applicable(busybox_dir: str) -> None:
    """A root without /etc/sysctl.conf and without any sysctl.d directory."""
    with tempfile.TemporaryDirectory() as root:
        for lib in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"):
            if not os.path.exists(lib):
                pytest.fail(f"{lib} not found (this test expects x86_64 Debian)")
        bindir = Path(root, "bin")
        bindir.mkdir()
        shutil.copy(str(BUSYBOX), bindir / "busybox")
        for applet in ("sh", "awk", "printf", "tr", "wc", "cat"):
            (bindir / applet).symlink_to("busybox")
        for lib in (
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libresolv.so.2",
        ):
            if os.path.exists(lib):
                Path(root + os.path.dirname(lib)).mkdir(parents=True, exist_ok=True)
                shutil.copy(lib, root + lib)
        proc = subprocess.run(
            [CHROOT, root, "/bin/sh", "-c", SHELL],
            env={"LC_ALL": "C", "PATH": "/bin"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == NOT_APPLICABLE_RC, proc.stderr
        assert "no sysctl configuration" in proc.stderr
        Path(root, "etc").mkdir()
        Path(root, "etc", "sysctl.conf").write_text("vm.swappiness = 1\n")
        proc = subprocess.run(
            [CHROOT, root, "/bin/sh", "-c", SHELL],
            env={"LC_ALL": "C", "PATH": "/bin"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
        )
        assert parse(proc.stdout).facts == {
            "vm.swappiness": {"value": "1", "file": "/etc/sysctl.conf"}
        }


# ------------------------------------------------------------------ planted drift (lab)

APP_CONF = "/etc/sysctl.d/60-app.conf"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("sysctl-lab")) as running:
        running.up(
            [
                # role web: a sysctl.d file that differs
                LabHostSpec(
                    "prod-web1",
                    "production",
                    roles=("web",),
                    files={APP_CONF: "net.core.somaxconn = 4096\nvm.swappiness = 10\n"},
                ),
                LabHostSpec(
                    "stg-web1",
                    "staging",
                    roles=("web",),
                    files={APP_CONF: "net.core.somaxconn = 1024\n"},
                ),
                # role app: a sysctl set at runtime only, in staging
                LabHostSpec("prod-app1", "production", roles=("app",)),
                LabHostSpec(
                    "stg-app1",
                    "staging",
                    roles=("app",),
                    sysctls={"net.ipv4.tcp_keepalive_time": "600"},
                ),
            ]
        )
        yield running


@pytest.mark.lab
def test_planted_sysctl_drift(lab: Lab, tmp_path: Path) -> None:
    inventory = load_inventory(lab.write_inventory(tmp_path / "inv.yaml"))
    collectors = [BY_NAME["sysctl"], BY_NAME["sysctl_config"]]
    snaps = {
        s.host: s
        for s in collect_all(
            inventory.hosts, collectors, inventory.collect, Redactor(b"k" * 32), jobs=4
        )
    }
    for snap in snaps.values():
        assert snap.status is HostStatus.OK, snap.error
        assert snap.sections["sysctl_config"].status is SectionStatus.OK

    def config(host: str) -> dict[str, object]:
        return snaps[host].sections["sysctl_config"].facts

    # Set at runtime only: the runtime value is there, the config says nothing.
    assert snaps["stg-app1"].sections["sysctl"].facts["net.ipv4.tcp_keepalive_time"] == "600"
    assert snaps["prod-app1"].sections["sysctl"].facts["net.ipv4.tcp_keepalive_time"] == "7200"
    assert "net.ipv4.tcp_keepalive_time" not in config("stg-app1")
    assert config("stg-app1") == config("prod-app1")
    # The differing file, with the place each value comes from.
    assert config("prod-web1")["net.core.somaxconn"] == {"value": "4096", "file": APP_CONF}
    assert config("stg-web1")["net.core.somaxconn"] == {"value": "1024", "file": APP_CONF}
    assert "vm.swappiness" not in config("stg-web1")

    report = build_report(inventory, snaps, collectors, now_iso())
    found = {(f.role, f.collector, f.key, f.state) for f in report.findings}
    assert found == {
        ("app", "sysctl", "net.ipv4.tcp_keepalive_time", State.CHANGED),
        ("web", "sysctl_config", "net.core.somaxconn", State.CHANGED),
        ("web", "sysctl_config", "vm.swappiness", State.MISSING),
    }
    changed = next(f for f in report.findings if f.key == "net.core.somaxconn")
    assert [(c.path, c.reference, c.target) for c in changed.detail] == [("value", "4096", "1024")]
