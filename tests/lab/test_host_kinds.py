"""Lab hosts as production has them: sudo logins, bastions, stalls, keys in an agent.

Every check goes through the system OpenSSH client (``ssh -F /dev/null``), as a
person would, never through driftcheck: the inventory does not know ``become``
or ``proxy_jump`` yet.  Labs are torn down by finalizers, also when a test fails.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.lab import NETNS_PREFIX, STATE_DIR, Lab, LabError, LabHostSpec, cleanup_stale
from driftcheck.lab.agent import Agent
from driftcheck.lab.names import LAB_SUDO_USER
from tests.support.lab_support import (
    lab_mounts,
    lab_netns,
    live_lab_processes,
    ns_inodes,
    proc_state,
    spawn_python,
    timed_up,
    wait_for,
)

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
    argv: list[str],
    timeout: float = 30,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client command; without ``input`` its stdin is /dev/null."""
    return subprocess.run(
        argv,
        env=env,
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
    return timed_up(lab, SPECS, TIMINGS)


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


# ---------------------------------------------------------------- bastions

BASTION_SPECS = [
    LabHostSpec("bast-a", "production", bastion=True),
    LabHostSpec("prod-in1", "production", behind="bast-a"),
    LabHostSpec("direct", "staging"),
    LabHostSpec("stg-in2", "staging", behind="bast-a", login="sudo"),
    LabHostSpec("bast-b", "staging", bastion=True, login="sudo"),
    LabHostSpec("stg-in3", "staging", behind="bast-b"),
    LabHostSpec("stg-in-down", "staging", behind="bast-b", fault="down"),
    LabHostSpec("jump", "staging", bastion=True, network="machine"),
]
BEHIND = ("prod-in1", "stg-in2", "stg-in3")


@pytest.fixture(scope="module")
def blab(request: pytest.FixtureRequest) -> Lab:
    lab = Lab()
    request.addfinalizer(lab.down)
    started = time.monotonic()
    lab.up(BASTION_SPECS)
    TIMINGS["bastion_up"] = time.monotonic() - started
    return lab


def jump_argv(lab: Lab, host: str, command: str, timeout: int = 5) -> list[str]:
    """OpenSSH with ``-J``: the lab's ssh_config carries key and known_hosts to the jump too."""
    h = lab.hosts[host]
    assert h.proxy_jump is not None
    return [
        "ssh", "-F", str(lab.ssh_config), "-o", f"ConnectTimeout={timeout}",
        "-J", h.proxy_jump, "-p", str(h.port), f"{h.user}@{h.address}", command,
    ]  # fmt: skip


def test_behind_hosts_get_addresses_in_spec_order(blab: Lab) -> None:
    assert TIMINGS["bastion_up"] < 10.0, f"up took {TIMINGS['bastion_up']:.2f}s"
    net = blab.hosts["prod-in1"].address.rsplit(".", 1)[0]
    assert net in ("192.0.2", "198.51.100", "203.0.113")
    bast_a, bast_b = blab.hosts["bast-a"].port, blab.hosts["bast-b"].port
    expected = {
        "prod-in1": (f"{net}.2", f"root@127.0.0.1:{bast_a}"),
        "stg-in2": (f"{net}.3", f"root@127.0.0.1:{bast_a}"),
        "stg-in3": (f"{net}.4", f"dc@127.0.0.1:{bast_b}"),
        "stg-in-down": (f"{net}.5", f"dc@127.0.0.1:{bast_b}"),
    }
    known = blab.known_hosts.read_text().splitlines()
    for name, (address, jump) in expected.items():
        host = blab.hosts[name]
        assert (host.address, host.port, host.proxy_jump) == (address, 22, jump)
        assert f"{address} {host.host_public_key}" in known
    for name in ("bast-a", "bast-b", "jump", "direct"):
        host = blab.hosts[name]
        assert (host.address, host.proxy_jump) == ("127.0.0.1", None)
        assert f"[127.0.0.1]:{host.port} {host.host_public_key}" in known


def test_openssh_jumps_through_the_bastion(blab: Lab) -> None:
    for name in BEHIND:
        result = run(jump_argv(blab, name, "hostname; id -un"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [name, blab.hosts[name].user]
        # The same with -F /dev/null: the lab's ProxyCommand form of the jump.
        plain = run(blab.ssh_command(name, "hostname"))
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip() == name


def test_behind_host_key_is_checked_strictly(blab: Lab, tmp_path: Path) -> None:
    # Another host's key under the address: the jump works, the host is refused.
    wrong = tmp_path / "known_hosts"
    lines = blab.known_hosts.read_text().splitlines()
    address = blab.hosts["prod-in1"].address
    wrong.write_text(
        "".join(
            f"{address} {blab.hosts['stg-in2'].host_public_key}\n"
            if line.startswith(address + " ")
            else line + "\n"
            for line in lines
        )
    )
    config = tmp_path / "ssh_config"
    config.write_text(blab.ssh_config.read_text().replace(str(blab.known_hosts), str(wrong)))
    argv = jump_argv(blab, "prod-in1", "true")
    argv[2] = str(config)
    result = run(argv)
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_machine_has_no_route_to_behind_hosts(blab: Lab) -> None:
    lab_links = ("dcbr0", "dcv", "eth0@")
    for name in BEHIND:
        address = blab.hosts[name].address
        route = run(["ip", "-o", "route", "get", address]).stdout
        assert not any(f"dev {link}" in route for link in lab_links[:2]), route
        # From our namespace the address is either unreachable or leads off the
        # machine (its default route): a lab host answers with its SSH banner at
        # once; from here none may come.
        try:
            sock = socket.create_connection((address, 22), timeout=2)
        except OSError as exc:  # unreachable, timeout
            assert not isinstance(exc, ConnectionRefusedError), exc
            continue
        with sock:
            # Some machines' upstream accepts every TCP connection; it still is not the host.
            sock.settimeout(1.5)
            with pytest.raises(OSError):  # TimeoutError or reset; never a banner
                data = sock.recv(64)
                if not data:
                    raise ConnectionResetError("closed")
                pytest.fail(f"{address}:22 answered from the machine's namespace: {data!r}")


def banner_from(netns: str, address: str) -> str:
    """The first bytes that ``address``:22 sends, read from inside ``netns`` ('' if none)."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        "    s = socket.create_connection((sys.argv[1], 22), timeout=2)\n"
        "    print(s.recv(64).decode(errors='replace'), end='')\n"
        "except OSError as exc:\n"
        "    print(exc, file=sys.stderr)\n"
    )
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", probe, address]
    return run(argv, timeout=10).stdout


def test_behind_hosts_are_reachable_from_their_bastion(blab: Lab) -> None:
    for name in BEHIND:
        bastion = blab.hosts[str(blab.hosts[name].spec.behind)]
        assert banner_from(bastion.netns, blab.hosts[name].address).startswith("SSH-2.0-OpenSSH")
    # A host behind another bastion is on another bridge: bast-a cannot reach stg-in3.
    assert banner_from(blab.hosts["bast-a"].netns, blab.hosts["stg-in3"].address) == ""


def test_down_host_behind_a_bastion_refuses(blab: Lab) -> None:
    result = run(jump_argv(blab, "stg-in-down", "true", timeout=3))
    assert result.returncode == 255
    assert "Connection refused" in result.stderr or "connect failed" in result.stderr


def test_machine_network_bastion_reaches_loopback_hosts(blab: Lab) -> None:
    jump, direct = blab.hosts["jump"], blab.hosts["direct"]
    assert jump.netns == ""
    result = run(
        ["ssh", "-F", str(blab.ssh_config), "-J", f"root@127.0.0.1:{jump.port}",
         "-p", str(direct.port), "root@127.0.0.1", "hostname"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "direct"
    # An own-network bastion has only its bridge: loopback there is its own.
    own = run(
        ["ssh", "-F", str(blab.ssh_config), "-o", "ConnectTimeout=3",
         "-J", f"root@127.0.0.1:{blab.hosts['bast-a'].port}",
         "-p", str(direct.port), "root@127.0.0.1", "hostname"]
    )  # fmt: skip
    assert own.returncode == 255


def test_inventory_leaves_bastions_out(blab: Lab) -> None:
    inventory = blab.inventory()
    hosts = {
        name: entry
        for env in inventory["environments"].values()
        for name, entry in env["hosts"].items()
    }
    assert sorted(hosts) == sorted(["prod-in1", "direct", "stg-in2", "stg-in3", "stg-in-down"])
    assert hosts["stg-in2"] == {
        "address": blab.hosts["stg-in2"].address,
        "port": 22,
        "roles": ["web"],
        "user": "dc",
        "become": "sudo",
        "proxy_jump": f"root@127.0.0.1:{blab.hosts['bast-a'].port}",
    }
    assert "proxy_jump" not in hosts["direct"]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([LabHostSpec("a", "s", behind="nope")], "not a bastion of this lab"),
        ([LabHostSpec("b", "s"), LabHostSpec("a", "s", behind="b")], "not a bastion"),
        (
            [
                LabHostSpec("j", "s", bastion=True, network="machine"),
                LabHostSpec("a", "s", behind="j"),
            ],
            "network 'own'",
        ),
    ],
)
def test_lab_checks_behind(specs: list[LabHostSpec], message: str) -> None:
    lab = Lab()
    try:
        with pytest.raises(LabError, match=message):
            lab.up(specs)
    finally:
        lab.down()


def test_spec_checks_bastion_fields() -> None:
    with pytest.raises(LabError, match="cannot be behind"):
        LabHostSpec("a", "s", bastion=True, behind="b")
    with pytest.raises(LabError, match="only for bastions"):
        LabHostSpec("a", "s", network="machine")
    with pytest.raises(LabError, match="unknown network"):
        LabHostSpec("a", "s", bastion=True, network="lan")  # type: ignore[arg-type]
    with pytest.raises(LabError, match="not supported on host a behind"):
        LabHostSpec("a", "s", behind="b", fault="hang")
    with pytest.raises(LabError, match="sysctls would be"):
        LabHostSpec("a", "s", bastion=True, network="machine", sysctls={"net.core.somaxconn": "9"})


def test_benchmark_size_lab_comes_up_and_goes(tmp_path: Path) -> None:
    # What the transport benchmark builds: 50 hosts, reached directly and through one bastion.
    specs = [LabHostSpec(f"h{i:02d}", "production" if i % 2 else "staging") for i in range(50)]
    specs.append(LabHostSpec("jump", "production", bastion=True, network="machine"))
    lab = Lab(tmp_path)
    try:
        started = time.monotonic()
        lab.up(specs)
        TIMINGS["up_51"] = time.monotonic() - started
        assert TIMINGS["up_51"] < 30.0, f"up of 51 hosts took {TIMINGS['up_51']:.1f}s"
        jump = lab.hosts["jump"]
        for name in ("h00", "h49"):
            result = run(
                ["ssh", "-F", str(lab.ssh_config), "-J", f"root@127.0.0.1:{jump.port}",
                 "-p", str(lab.hosts[name].port), "root@127.0.0.1", "hostname"]
            )  # fmt: skip
            assert result.stdout.strip() == name, result.stderr
        lab_id, inodes = lab.lab_id, ns_inodes(lab.lab_id)
        assert len(lab.inventory()["environments"]["production"]["hosts"]) == 25
    finally:
        lab.down()
    assert lab_netns(lab_id) == []
    assert live_lab_processes(lab_id, inodes) == []
    assert lab_mounts(lab_id) == []


CHILD = """
import json, sys
from pathlib import Path
from driftcheck.lab import Lab, LabHostSpec
lab = Lab(Path(sys.argv[1]))
lab.up([LabHostSpec("crash-bast", "s", bastion=True),
        LabHostSpec("crash-in", "s", behind="crash-bast"),
        LabHostSpec("crash-jump", "s", bastion=True, network="machine")])
print(json.dumps({"lab_id": lab.lab_id, "port": lab.hosts["crash-jump"].port}), flush=True)
sys.stdin.read()
"""


def commands_naming(text: str) -> list[str]:
    """Command lines of live processes that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and proc_state(int(entry.name)) not in (None, "Z", "X"):
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in line and "pytest" not in line:
                found.append(line)
    return found


@pytest.fixture
def killed_bastion_lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A lab with a behind-host daemon and a machine-network bastion, SIGKILLed."""
    child = spawn_python(CHILD, str(tmp_path))

    def finish() -> None:
        child.kill()
        child.wait()
        cleanup_stale()  # whatever the test did, leave nothing behind

    request.addfinalizer(finish)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, child.stderr.read() if child.stderr else "child lab did not start"
    lab_id = str(json.loads(line)["lab_id"])
    child.send_signal(signal.SIGKILL)
    child.wait()
    yield lab_id


def test_cleanup_stale_removes_bastion_kinds(killed_bastion_lab: str) -> None:
    lab_id = killed_bastion_lab
    inodes = ns_inodes(lab_id)
    procs = live_lab_processes(lab_id, inodes)
    assert any("sshd -D" in p for p in procs), procs
    # The machine-network bastion's listener enters no netns: found by the run dir.
    jump_listener = f"{STATE_DIR}/{NETNS_PREFIX}{lab_id}/2.mnt"
    assert any(p.startswith("socat ") for p in commands_naming(jump_listener))
    cleanup_stale()
    wait_for(lambda: live_lab_processes(lab_id, inodes) == [])
    assert commands_naming(jump_listener) == []
    assert lab_netns(lab_id) == []
    assert lab_mounts(lab_id) == []


# ---------------------------------------------------------------- stalls


@pytest.fixture(scope="module")
def stall_lab(request: pytest.FixtureRequest) -> Lab:
    lab = Lab()
    request.addfinalizer(lab.down)
    lab.up(
        [
            LabHostSpec("stg-banner", "staging", fault="banner_stall"),
            LabHostSpec("stg-auth", "staging", fault="auth_stall"),
        ]
    )
    return lab


def hangs_after(lab: Lab, host: str, last_words: str, tmp_path: Path) -> str:
    """Start ``ssh -v -o ConnectTimeout=2``; return its log once it hung past ``last_words``.

    Hung means: ``last_words`` appeared and the client was still waiting 3 s
    later, past its ConnectTimeout.
    """
    log = tmp_path / f"{host}.log"
    argv = lab.ssh_command(host, "true", connect_timeout=2)
    argv.insert(1, "-v")
    with open(log, "w") as err:
        client = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_for(lambda: last_words in log.read_text() or client.poll() is not None)
        assert last_words in log.read_text(), log.read_text()
        with pytest.raises(subprocess.TimeoutExpired):
            client.wait(timeout=3)
        return log.read_text()
    finally:
        client.kill()
        client.wait()


def test_banner_stall_sends_a_banner_then_nothing(stall_lab: Lab, tmp_path: Path) -> None:
    address = ("127.0.0.1", stall_lab.hosts["stg-banner"].port)
    with socket.create_connection(address, timeout=2) as sock:
        sock.settimeout(2)
        banner = b""
        while not banner.endswith(b"\n"):
            chunk = sock.recv(64)
            assert chunk, "closed before the banner ended"
            banner += chunk
        assert banner == b"SSH-2.0-OpenSSH_9.2p1\r\n"
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(64)
    log = hangs_after(stall_lab, "stg-banner", "SSH2_MSG_KEXINIT sent", tmp_path)
    assert "remote software version OpenSSH_9.2p1" in log
    assert "SSH2_MSG_KEXINIT received" not in log


def test_auth_stall_never_answers_the_key(stall_lab: Lab, tmp_path: Path) -> None:
    log = hangs_after(stall_lab, "stg-auth", "Offering public key", tmp_path)
    # Key exchange and the strict host key check completed: a real sshd.
    assert "Host '[127.0.0.1]:" in log and "is known and matches" in log
    assert "Server accepts key" not in log and "Authenticated" not in log
    # The stall is sshd's AuthorizedKeysCommand, run as nobody inside the host.
    sleeper = stall_lab.exec("stg-auth", ["pgrep", "-u", "nobody", "-x", "sleep"], check=False)
    assert sleeper.stdout.strip(), "no AuthorizedKeysCommand sleeping as nobody"


def test_stall_processes_go_with_the_lab() -> None:
    lab = Lab()
    try:
        lab.up([LabHostSpec("b", "staging", fault="banner_stall")])
        with socket.create_connection(("127.0.0.1", lab.hosts["b"].port), timeout=2) as sock:
            sock.settimeout(2)
            assert sock.recv(8) == b"SSH-2.0-"
            lab_id, inodes = lab.lab_id, ns_inodes(lab.lab_id)
            assert any("sleep 3600" in p for p in live_lab_processes(lab_id, inodes))
            lab.down()
        assert live_lab_processes(lab_id, inodes) == []
    finally:
        lab.down()


# ---------------------------------------------------------------- ssh-agent

PASSPHRASE = "correct horse battery"


def fingerprint(public_key: Path) -> str:
    return run(["ssh-keygen", "-l", "-f", str(public_key)]).stdout.split()[1]


def test_agent_holds_the_encrypted_key_and_logs_in(lab: Lab, tmp_path: Path) -> None:
    key = lab.encrypted_key(PASSPHRASE)
    # Really protected: without the passphrase the key does not open.
    assert run(["ssh-keygen", "-y", "-P", "", "-f", str(key)]).returncode != 0
    home = tmp_path / "home"
    home.mkdir()
    with Agent(lab) as agent:
        assert agent.socket.is_relative_to(lab.workdir)
        agent.add(key, PASSPHRASE)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), **agent.env}
        listed = run(["ssh-add", "-l"], env=env)
        assert listed.returncode == 0, listed.stderr
        assert fingerprint(lab.identity_file.with_suffix(".pub")) in listed.stdout
        # No -i, no default keys in HOME: the agent is the only way in.
        argv = [
            "ssh", "-F", "/dev/null", "-o", "IdentitiesOnly=no",
            "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-p", str(lab.hosts["prod-root"].port), "root@127.0.0.1",
            "hostname",
        ]  # fmt: skip
        result = run(argv, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "prod-root"
        pid = agent.pid
    assert proc_state(pid) in (None, "Z", "X")
    assert not agent.socket.exists()
    # Without the agent the same command has no key to offer.
    without = run(argv, env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    assert without.returncode == 255
    assert "Permission denied" in without.stderr


def test_agent_refuses_a_wrong_passphrase(lab: Lab) -> None:
    key = lab.encrypted_key(PASSPHRASE)
    with Agent(lab) as agent, pytest.raises(LabError, match="ssh-add"):
        agent.add(key, "not the passphrase")


def test_lab_down_ends_an_agent_left_running() -> None:
    lab = Lab()
    try:
        lab.up([LabHostSpec("a", "staging")])
        agent = Agent(lab)
        agent.start()
        pid = agent.pid
        assert proc_state(pid) not in (None, "Z", "X")
        lab.down()
        assert proc_state(pid) in (None, "Z", "X")
    finally:
        lab.down()
