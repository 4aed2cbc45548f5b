"""The kernel collector: command-line splitting as the kernel does it, module lines,
its shell under dash and busybox ash (root and unprivileged, /proc/modules missing
or present), and a module planted on one lab host found as drift over SSH."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.collectors.kernel import SHELL, VOLATILE, parse, split_cmdline
from driftcheck.findings import State
from driftcheck.inventory import load_inventory
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import HostStatus, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.redact import Redactor
from driftcheck.runner import collect_all, now_iso
from driftcheck.script import NOT_APPLICABLE_RC
from tests.support.paths import FIXTURES

CAPTURE = FIXTURES / "kernel" / "capture.sh"
SU = shutil.which("su") or "/bin/su"


# ------------------------------------------------------------------ pure parsing


@pytest.mark.parametrize(
    ("text", "params", "init"),
    [
        ("", [], None),
        ("   \n", [], None),
        ("ro quiet", [("ro", None), ("quiet", None)], None),
        ("a=b=c", [("a", "b=c")], None),
        # "=" as the very first character does not count (kernel: equals == 0).
        ("=x =a=b", [("=x", None), ("=a", "b")], None),
        ('d="e f" "g=h i" k=""', [("d", "e f"), ("g", "h i"), ("k", "")], None),
        ('"quoted word" x', [("quoted word", None), ("x", None)], None),
        # A quote in the middle of a value is kept, as next_arg() keeps it.
        ('a=b"c d"e', [("a", 'b"c d"e')], None),
        ("a\tb\nc", [("a", None), ("b", None), ("c", None)], None),
        ("ro -- single  emergency ", [("ro", None)], "single  emergency"),
        ("ro --", [("ro", None)], ""),
        ('ro "--" init', [("ro", None)], "init"),
    ],
)
def test_split_cmdline_like_the_kernel(
    text: str, params: list[tuple[str, str | None]], init: str | None
) -> None:
    assert split_cmdline(text) == (params, init)


def test_repeated_parameters_keep_their_order() -> None:
    facts = parse("C|console=tty0 quiet console=ttyS0,115200 quiet\n").facts
    assert facts == {"cmdline.console": ["tty0", "ttyS0,115200"], "cmdline.quiet": [True, True]}


def test_module_values_and_garbage() -> None:
    raw = (
        "C|ro\n#modules /proc/modules\n"
        "M|a 1 0 - Live 0x0 (OE+)\nM|b 1 0 - Unloading 0x0\nM|c 1 0 - Live\n"
        "M|d x 0 - Live 0x0\nM|e 1 0 - Dead 0x0\nS|f\tlive\tP\nS|\tlive\t\nS|g\t\t\n"
    )
    assert parse(raw).facts == {
        "cmdline.ro": True,
        "module.a": "loaded (OE)",
        "module.b": "loaded",
        "module.f": "loaded (P)",
    }


def test_volatile_keys_name_per_install_values() -> None:
    assert set(VOLATILE) == {
        "cmdline.BOOT_IMAGE",
        "cmdline.initrd",
        "cmdline.root",
        "cmdline.resume",
        "cmdline.rd.luks.uuid",
    }


# ------------------------------------------------------------------ the shell


def run_shell(shell: str, path: str, user: str | None = None) -> tuple[int, str]:
    """Run the section body as the combined script does: sh -c BODY, stdin closed."""
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
    return proc.returncode, proc.stdout.decode("utf-8", "backslashreplace")


@pytest.fixture
def busybox_path(busybox_bin: str) -> str:
    """A PATH where sh, awk and every other tool the shell may call are busybox applets."""
    return busybox_bin


def test_shell_on_dash_and_busybox_as_root_and_nobody(busybox_path: str) -> None:
    std = "/usr/sbin:/usr/bin:/sbin:/bin"
    rc, expected = run_shell("/bin/dash", std)
    assert rc == 0 and expected.startswith("C|")
    assert parse(expected).facts
    for shell, path in ((f"{busybox_path}/sh", busybox_path), ("/bin/dash", std)):
        for user in (None, "nobody"):
            assert run_shell(shell, path, user) == (0, expected), (shell, user)


def test_missing_proc_cmdline_is_not_applicable(tmp_path: Path) -> None:
    # A private mount namespace whose /proc is an empty tmpfs.
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'mount -t tmpfs t /proc && exec sh -c "$0"', SHELL],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == NOT_APPLICABLE_RC
    assert proc.stdout == ""
    assert "no readable /proc/cmdline" in proc.stderr


def test_shell_reads_proc_modules_when_present(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("ro\n")
    modules = tmp_path / "modules"
    modules.write_text("dummy 16384 0 - Live 0x0000000000000000\n")
    out = subprocess.run(
        [str(CAPTURE), str(cmdline), str(modules)], capture_output=True, check=True
    ).stdout.decode()
    assert out == "C|ro\n#modules /proc/modules\nM|dummy 16384 0 - Live 0x0000000000000000\n"
    assert parse(out).facts == {"cmdline.ro": True, "module.dummy": "loaded"}


# ------------------------------------------------------------------ planted drift (lab)

PLANTED = "wireguard 110592 0 - Live 0x0000000000000000 (OE)\n"


def staging_cmdline() -> str:
    """The real command line with one more kernel parameter (before any " -- ")."""
    kernel, sep, init = Path("/proc/cmdline").read_text().rstrip("\n").partition(" -- ")
    return f"{kernel} mitigations=off{sep}{init}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("kernel-lab")) as running:
        running.up(
            [
                LabHostSpec("prod-web1", "production"),
                LabHostSpec(
                    "stg-web1",
                    "staging",
                    kernel_state={"/proc/modules": PLANTED, "/proc/cmdline": staging_cmdline()},
                ),
            ]
        )
        yield running


@pytest.mark.lab
def test_module_loaded_on_one_side_only_is_drift(lab: Lab, tmp_path: Path) -> None:
    inventory = load_inventory(lab.write_inventory(tmp_path / "inv.yaml"))
    collectors = [BY_NAME["os"], BY_NAME["kernel"]]
    snaps = {
        s.host: s
        for s in collect_all(
            inventory.hosts, collectors, inventory.collect, Redactor(b"k" * 32), jobs=2
        )
    }
    for snap in snaps.values():
        assert snap.status is HostStatus.OK, snap.error
        assert snap.sections["kernel"].status is SectionStatus.OK
    assert "module.wireguard" not in snaps["prod-web1"].sections["kernel"].facts
    assert snaps["stg-web1"].sections["kernel"].facts["module.wireguard"] == "loaded (OE)"
    report = build_report(inventory, snaps, collectors, now_iso())
    found = {(f.collector, f.key, f.state) for f in report.findings}
    assert found == {
        ("kernel", "module.wireguard", State.EXTRA),
        ("kernel", "cmdline.mitigations", State.CHANGED),
    }
