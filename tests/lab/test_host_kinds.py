"""Lab hosts as production has them: sudo logins, bastions, stalls, keys in an agent.

Every check goes through the system OpenSSH client (``ssh -F /dev/null``), as a
person would, never through driftcheck: the inventory does not know ``become``
or ``proxy_jump`` yet.  Labs are torn down by finalizers, also when a test fails.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from driftcheck.lab import Lab, LabError, LabHostSpec
from driftcheck.lab.names import LAB_SUDO_USER

pytestmark = pytest.mark.lab

TIMINGS: dict[str, float] = {}

SPECS = [
    LabHostSpec("prod-root", "production"),
    LabHostSpec("stg-sudo", "staging", login="sudo"),
    LabHostSpec("stg-sudopw", "staging", login="sudo-password"),
    LabHostSpec("stg-tty", "staging", login="sudo-requiretty"),
]
SUDO_HOSTS = ("stg-sudo", "stg-sudopw", "stg-tty")


def openssh(lab: Lab, user: str, port: int, command: str, *extra: str) -> list[str]:
    """argv of the system OpenSSH client with the lab's key and strict host key checking."""
    return [
        "ssh", "-F", "/dev/null", "-i", str(lab.identity_file),
        "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", *extra,
        "-p", str(port), f"{user}@127.0.0.1", command,
    ]  # fmt: skip


def run(
    argv: list[str], timeout: float = 30, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a client command; without ``input`` its stdin is /dev/null."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
    )


def as_user(lab: Lab, host: str, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on ``host`` as the user the lab says to log in as."""
    h = lab.hosts[host]
    return run(openssh(lab, h.user, h.port, command, *extra))


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Lab:
    lab = Lab()
    request.addfinalizer(lab.down)
    started = time.monotonic()
    lab.up(SPECS)
    TIMINGS["up"] = time.monotonic() - started
    return lab


# ---------------------------------------------------------------- sudo logins


def test_sudo_kinds_log_in_as_the_sudo_user(lab: Lab) -> None:
    assert TIMINGS["up"] < 10.0, f"up took {TIMINGS['up']:.2f}s"
    for name in SUDO_HOSTS:
        host = lab.hosts[name]
        assert (host.user, host.become) == (LAB_SUDO_USER, "sudo")
        result = as_user(lab, name, "id -un; stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["dc", "700 dc", "600 dc"]
        sudoers = lab.exec(name, ["stat", "-c", "%a %U", "/etc/sudoers.d/dc"]).stdout
        assert sudoers == "440 root\n"
    root = lab.hosts["prod-root"]
    assert (root.user, root.become, root.sudo_password) == ("root", None, None)


def test_root_cannot_log_in_to_sudo_kinds(lab: Lab) -> None:
    for name in SUDO_HOSTS:
        result = run(openssh(lab, "root", lab.hosts[name].port, "true"))
        assert result.returncode == 255
        assert "Permission denied" in result.stderr
        # Not only refused by PermitRootLogin=no: the key is gone too.
        check = lab.exec(name, ["test", "-e", "/root/.ssh/authorized_keys"], check=False)
        assert check.returncode == 1
    assert run(openssh(lab, "root", lab.hosts["prod-root"].port, "true")).returncode == 0


def test_sudo_without_password(lab: Lab) -> None:
    result = as_user(lab, "stg-sudo", "sudo -n id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("uid=0(root)")
    assert lab.exec("stg-sudo", ["cat", "/etc/sudoers.d/dc"]).stdout == (
        "dc ALL=(ALL) NOPASSWD: ALL\n"
    )


def test_sudo_that_wants_a_password(lab: Lab) -> None:
    result = as_user(lab, "stg-sudopw", "sudo -n id")
    assert result.returncode == 1
    assert "a password is required" in result.stderr
    password = lab.hosts["stg-sudopw"].sudo_password
    assert password
    # The password the lab reports is the one sudo takes (read from stdin with -S).
    given = run(
        openssh(lab, "dc", lab.hosts["stg-sudopw"].port, "sudo -S -p '' id -u"),
        input=password + "\n",
    )
    assert given.returncode == 0, given.stderr
    assert given.stdout == "0\n"


def test_sudo_that_wants_a_tty(lab: Lab) -> None:
    result = as_user(lab, "stg-tty", "sudo -n id")
    assert result.returncode == 1
    assert "you must have a tty" in result.stderr
    # With a tty (-tt forces one although our stdin is none) sudo works.
    with_tty = as_user(lab, "stg-tty", "sudo -n id -u", "-tt")
    assert with_tty.returncode == 0, with_tty.stderr
    assert with_tty.stdout.strip().splitlines()[-1] == "0"


def test_inventory_names_user_and_become(lab: Lab) -> None:
    hosts = lab.inventory()["environments"]["staging"]["hosts"]
    for name in SUDO_HOSTS:
        assert hosts[name]["user"] == "dc"
        assert hosts[name]["become"] == "sudo"
    prod = lab.inventory()["environments"]["production"]["hosts"]["prod-root"]
    assert "user" not in prod and "become" not in prod


def test_login_is_validated() -> None:
    with pytest.raises(LabError, match="unknown login 'admin'"):
        LabHostSpec("x", "staging", login="admin")  # type: ignore[arg-type]
