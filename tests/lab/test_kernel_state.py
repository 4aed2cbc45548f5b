"""LabHostSpec.kernel_state: one lab host sees its own /proc/cmdline and module list.

All lab hosts share the real kernel; these tests check that the planted text is
what the one host (and only it) sees, read-only and readable by anybody, that
the real machine is untouched, and that teardown leaves nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from driftcheck.lab import Lab, LabError, LabHostSpec, host, load_specs
from driftcheck.lab.host import kernel_state_script
from driftcheck.lab.spec import parse_modules
from tests.support.lab_support import lab_mounts, lab_netns, live_lab_processes, mounts_under, ssh

CMDLINE = 'BOOT_IMAGE=/vmlinuz-6.1.0-13-amd64 root=/dev/vda1 ro quiet dyndbg="file x.c +p"'
MODULES = (
    "dummy 16384 0 - Live 0x0000000000000000\n"
    "nvidia 35319808 1 nvidia_modeset, Live 0x0000000000000000 (POE)\n"
    "nvidia_modeset 1241088 0 - Live 0x0000000000000000 (POE)\n"
)
PROC_MODULES = Path("/proc/modules").exists()


# ------------------------------------------------------------------ the spec


def test_spec_accepts_and_normalises_kernel_state() -> None:
    spec = LabHostSpec(
        "stg-web1",
        "staging",
        kernel_state={"/proc/cmdline": CMDLINE, "/proc/modules": MODULES.rstrip("\n")},
    )
    assert spec.kernel_state == {"/proc/cmdline": CMDLINE + "\n", "/proc/modules": MODULES}
    with pytest.raises(TypeError):
        spec.kernel_state["/proc/cmdline"] = "x"  # type: ignore[index]
    # The kernel prints an empty command line as a newline; an empty module list is empty.
    empty = LabHostSpec("e", "staging", kernel_state={"/proc/cmdline": "", "/proc/modules": ""})
    assert empty.kernel_state == {"/proc/cmdline": "\n", "/proc/modules": ""}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"/proc/version": "Linux"}, r"'/proc/version' .* not supported; use /proc/cmdline or"),
        ({"/proc/../etc/passwd": "x"}, "not supported"),
        ({"/proc/cmdline": "a\nb"}, "must be one line"),
        ({"/proc/cmdline": "x" * 5000}, "at most 4096"),
        ({"/proc/cmdline": 42}, "must be text"),
        ({"/proc/cmdline": "a\0b"}, "NUL"),
        ({"/proc/modules": "dummy 16384 0 - Live"}, "line 1 is not a /proc/modules line"),
        ({"/proc/modules": "../../etc 1 0 - Live 0x0"}, "not a /proc/modules line"),
        ({"/proc/modules": "a 1 0 - Live 0x0\na 2 0 - Live 0x0"}, "module a is listed twice"),
    ],
)
def test_spec_rejects_bad_kernel_state(state: dict[str, object], message: str) -> None:
    with pytest.raises(LabError, match=message):
        LabHostSpec("stg-web1", "staging", kernel_state=state)  # type: ignore[arg-type]


def test_parse_modules_reads_the_kernel_format() -> None:
    mods = parse_modules(
        "piix 12804 0 [permanent], Live 0xffffffff88059000\n"
        "nounload 12345 - - Live 0x0000000000000000\n"
        "vboxdrv 696320 2 a,b, Loading 0x0 (OE+)\n"
    )
    assert [(m.name, m.users, m.state, m.taint, m.refcount) for m in mods] == [
        ("piix", (), "Live", "", "0"),
        ("nounload", (), "Live", "", "-"),
        ("vboxdrv", ("a", "b"), "Loading", "OE", "2"),
    ]


def test_specfile_reads_kernel_state(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(
        "hosts:\n"
        "  stg-web1:\n"
        "    environment: staging\n"
        "    kernel_state:\n"
        '      /proc/cmdline: "root=/dev/vda1 ro"\n'
        "      /proc/modules: |\n"
        "        dummy 16384 0 - Live 0x0000000000000000\n"
    )
    [spec] = load_specs(path)
    assert spec.kernel_state == {
        "/proc/cmdline": "root=/dev/vda1 ro\n",
        "/proc/modules": "dummy 16384 0 - Live 0x0000000000000000\n",
    }
    path.write_text(
        "hosts:\n  stg-web1:\n    environment: staging\n    kernel_state:\n      /proc/mounts: x\n"
    )
    with pytest.raises(LabError, match=r"lab\.yaml:5: kernel_state path '/proc/mounts'"):
        load_specs(path)


def test_script_binds_files_and_uses_sys_module_without_proc_modules() -> None:
    state = {"/proc/cmdline": "ro\n", "/proc/modules": MODULES}
    with_proc = kernel_state_script("/run/x/0", Path("/w/k"), state, proc_modules=True)
    assert "mount --bind /w/k/cmdline /run/x/0/proc/cmdline" in with_proc
    assert "mount --bind /w/k/modules /run/x/0/proc/modules" in with_proc
    assert "sys/module" not in with_proc
    without = kernel_state_script("/run/x/0", Path("/w/k"), state, proc_modules=False)
    assert "mount --bind /w/k/cmdline /run/x/0/proc/cmdline" in without
    assert "/proc/modules" not in without
    assert "mount --move /w/k/sys-module /run/x/0/sys/module" in without
    assert "ln -s ../../nvidia_modeset /w/k/sys-module/nvidia/holders/nvidia_modeset" in without


# ------------------------------------------------------------------ a real lab (root)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("klab")) as running:
        running.up(
            [
                LabHostSpec("prod-web1", "production"),
                LabHostSpec(
                    "stg-web1",
                    "staging",
                    kernel_state={"/proc/cmdline": CMDLINE, "/proc/modules": MODULES},
                ),
                LabHostSpec("stg-web2", "staging", kernel_state={"/proc/cmdline": "ro"}),
            ]
        )
        yield running


def sh(lab: Lab, host: str, command: str) -> str:
    return lab.exec(host, ["sh", "-c", command]).stdout


def modules_seen(lab: Lab, host: str) -> str:
    """What a module lister on this kernel reads: /proc/modules, else /sys/module."""
    return sh(
        lab,
        host,
        "if [ -r /proc/modules ]; then cut -d' ' -f1 /proc/modules; else "
        "for d in /sys/module/*; do [ -e $d/initstate ] && echo ${d##*/}; done; fi; :",
    )


@pytest.mark.lab
def test_cmdline_is_the_hosts_own(lab: Lab) -> None:
    real = Path("/proc/cmdline").read_text()
    assert sh(lab, "stg-web1", "cat /proc/cmdline") == CMDLINE + "\n"
    assert sh(lab, "stg-web2", "cat /proc/cmdline") == "ro\n"
    assert sh(lab, "prod-web1", "cat /proc/cmdline") == real
    assert Path("/proc/cmdline").read_text() == real
    # Over SSH, as an unprivileged user, as the collector would read it.
    out = ssh(lab, "stg-web1", "su nobody -s /bin/sh -c 'cat /proc/cmdline'")
    assert out.stdout == CMDLINE + "\n", out.stderr


@pytest.mark.lab
def test_modules_only_on_the_planted_host(lab: Lab) -> None:
    assert modules_seen(lab, "stg-web1").split() == ["dummy", "nvidia", "nvidia_modeset"]
    assert modules_seen(lab, "stg-web2") == modules_seen(lab, "prod-web1")
    assert "dummy" not in modules_seen(lab, "prod-web1").split()
    if not PROC_MODULES:
        # Presented where a kernel without /proc/modules shows loadable modules.
        mod = "/sys/module/nvidia"
        assert sh(lab, "stg-web1", f"cat {mod}/initstate {mod}/taint {mod}/refcnt") == (
            "live\nPOE\n1\n"
        )
        assert sh(lab, "stg-web1", f"readlink {mod}/holders/nvidia_modeset") == (
            "../../nvidia_modeset\n"
        )
        # The real built-in entries stay, with their parameters.
        real = sorted(os.listdir("/sys/module"))
        seen = sh(lab, "stg-web1", "ls /sys/module").split()
        assert sorted(set(seen) - {"dummy", "nvidia", "nvidia_modeset"}) == real
        assert sh(lab, "stg-web1", "ls /sys/module/printk/parameters") == sh(
            lab, "prod-web1", "ls /sys/module/printk/parameters"
        )
        assert "dummy" not in os.listdir("/sys/module")


@pytest.mark.lab
def test_planted_state_is_read_only(lab: Lab) -> None:
    for command in ("echo x > /proc/cmdline", "mkdir /sys/module/evil", "echo x > /proc/modules"):
        proc = lab.exec("stg-web1", ["sh", "-c", command], check=False)
        assert proc.returncode != 0, command
    assert sh(lab, "stg-web1", "cat /proc/cmdline") == CMDLINE + "\n"


@pytest.mark.lab
def test_nothing_leaks_into_the_real_mount_table(lab: Lab) -> None:
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert "dclab-sys-module" not in mountinfo
    assert "/kernel/" not in mountinfo


@pytest.mark.lab
def test_teardown_leaves_nothing(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    try:
        lab.up(
            [
                LabHostSpec(
                    "td-web1",
                    "staging",
                    kernel_state={"/proc/cmdline": CMDLINE, "/proc/modules": MODULES},
                )
            ]
        )
        assert sh(lab, "td-web1", "cat /proc/cmdline") == CMDLINE + "\n"
        kdir = lab.upper_dir("td-web1").parent / "kernel"
        assert (kdir / "cmdline").read_text() == CMDLINE + "\n"
    finally:
        lab.down()
    assert lab_netns(lab.lab_id) == []
    assert lab_mounts(lab.lab_id) == []
    assert mounts_under(tmp_path) == []
    assert live_lab_processes(lab.lab_id) == []
    assert list(tmp_path.iterdir()) == []
    assert "dclab-sys-module" not in Path("/proc/self/mountinfo").read_text()


@pytest.mark.lab
def test_failed_kernel_state_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount that fails half-way (here: a bad target) still tears down cleanly."""
    real = host.kernel_state_script

    def broken(root: str, kdir: Path, state: Mapping[str, str], proc_modules: bool) -> str:
        return real(root, kdir, state, proc_modules) + "\nmount --bind /nonexistent /nonexistent"

    monkeypatch.setattr(host, "kernel_state_script", broken)
    lab = Lab(tmp_path)
    with pytest.raises(LabError, match="td-web2"):
        lab.up([LabHostSpec("td-web2", "staging", kernel_state={"/proc/modules": MODULES})])
    assert lab_mounts(lab.lab_id) == []
    assert mounts_under(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
