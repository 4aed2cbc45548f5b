"""The sysctl section as root and as nobody: what nobody may not read is unknown, never missing."""

from __future__ import annotations

import fnmatch
import subprocess

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.collectors.base import DENIED
from driftcheck.model import CollectSettings, ParseResult

SYSCTL = BY_NAME["sysctl"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run(shell: list[str], path: str, as_nobody: bool) -> ParseResult:
    """The section's shell on stdin, like the runner, with only ``path`` to find tools."""
    proc = subprocess.run(
        [*(NOBODY if as_nobody else []), "env", "-i", "LC_ALL=C", f"PATH={path}", *shell, "-s"],
        input=SYSCTL.shell_for(CollectSettings()).encode(),
        capture_output=True,
        cwd="/",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return SYSCTL.parse(proc.stdout.decode("utf-8", "backslashreplace"))


def moves(key: str) -> bool:
    """Volatile keys, and counters that move between two runs, are compared by presence only."""
    return any(fnmatch.fnmatchcase(key, g) for g in SYSCTL.volatile)


@pytest.mark.parametrize("tools", ["debian", "busybox"])
def test_what_nobody_cannot_read_is_an_error(tools: str, busybox_bin: str) -> None:
    shell, path = (["sh"], "/usr/sbin:/usr/bin:/sbin:/bin")
    if tools == "busybox":
        shell, path = ["/usr/bin/busybox", "sh"], busybox_bin
    root, nobody = run(shell, path, as_nobody=False), run(shell, path, as_nobody=True)
    assert not root.errors  # root may read every file that has a value
    lost = root.facts.keys() - nobody.facts.keys()
    assert lost and {"kernel.cad_pid", "vm.mmap_rnd_bits"} <= lost
    assert lost <= nobody.errors.keys()
    assert set(nobody.errors.values()) == {DENIED}
    assert not nobody.facts.keys() & nobody.errors.keys()
    assert all(root.facts[k] == v for k, v in nobody.facts.items() if not moves(k))


def test_unreadable_paths_become_keys_the_way_sysctl_names_them() -> None:
    raw = (
        "vm.swappiness = 60\n"
        "kernel.cad_pid = 1\n"
        "#unreadable\n"
        "kernel/cad_pid\n"  # read after all (the list is a second look): the value wins
        "net/ipv6/conf/eth0.100/stable_secret\n"  # a "." in a name is "/" in the key
        "fs/binfmt_misc/python3.11\n"
        "vm/stat_refresh\n"  # reads empty even for root: never a value, never unknown
        "\n"
        "garbage with spaces\n"
    )
    assert SYSCTL.parse(raw) == ParseResult(
        {"vm.swappiness": "60", "kernel.cad_pid": "1"},
        {
            "fs.binfmt_misc.python3/11": DENIED,
            "net.ipv6.conf.eth0/100.stable_secret": DENIED,
        },
    )


def test_a_value_line_never_starts_the_unreadable_list() -> None:
    # Every sysctl line is "key = value": a value that reads "#unreadable" stays a value.
    raw = "kernel.x = #unreadable\n#unreadable\nkernel/y\n"
    assert SYSCTL.parse(raw) == ParseResult({"kernel.x": "#unreadable"}, {"kernel.y": DENIED})
