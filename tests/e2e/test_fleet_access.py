"""Reaching hosts as production has them, over real sshd: a sudo user instead of root,
hosts behind a bastion, keys only in an ssh-agent, ssh_config aliases, and handshakes
that stall. Each test fails when its feature is removed."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftcheck.lab import Lab, LabHostSpec
from driftcheck.lab.agent import Agent
from driftcheck.lab.lab import ssh_argv
from tests.support.helpers import run_driftcheck
from tests.support.lab_support import write_lab_inventory

pytestmark = pytest.mark.lab

SECRET_FILE = "/etc/myapp/root-only.conf"
#: The app's "agent" command lists agent sockets sshd made for this session:
#: there is one only when the client asked for agent forwarding.
COLLECT = {"files": [SECRET_FILE], "apps": {"agent": "ls -d /tmp/ssh-* 2>/dev/null | wc -l"}}
PLANTED = {SECRET_FILE: "[db]\nhost = db1\n"}
MODES = {SECRET_FILE: 0o600}


def spec(name: str, env: str = "staging", **kw: Any) -> LabHostSpec:
    return LabHostSpec(name, env, files=PLANTED, file_modes=MODES, **kw)


SPECS = [
    spec("prod-web1", "production"),
    spec("stg-sudo", login="sudo"),
    spec("stg-sudopw", login="sudo-password"),
    spec("stg-tty", login="sudo-requiretty"),
    spec("stg-rule", login="sudo-password"),
    LabHostSpec("bast", "infra", bastion=True),
    LabHostSpec("bast-m", "infra", bastion=True, network="machine"),
    spec("stg-behind1", behind="bast"),
    spec("stg-behind2", behind="bast", login="sudo"),
    LabHostSpec("stg-banner", "staging", fault="banner_stall"),
    LabHostSpec("stg-auth", "staging", fault="auth_stall"),
    LabHostSpec("stg-hung", "staging", fault="hang"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("lab")) as running:
        running.up(SPECS)
        yield running


def write_inventory(lab: Lab, path: Path, hosts: set[str], **defaults: Any) -> Path:
    return write_lab_inventory(lab, path, hosts, COLLECT, **defaults)


def collect(
    tmp: Path, inv: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run collect, then show each staging host: its status, error and facts by name."""
    if env is None:
        run = run_driftcheck(tmp, "collect", "-i", str(inv))
    else:
        run = subprocess.run(
            ["python3", "-m", "driftcheck", "collect", "-i", str(inv)],
            capture_output=True, text=True, check=False, timeout=120,
            env={**env, "DRIFTCHECK_KEY_FILE": str(tmp / "hmac.key"),
                 "DRIFTCHECK_DB": f"sqlite:///{tmp / 'dc.db'}"},
        )  # fmt: skip
    hosts: dict[str, Any] = {}
    for name in yaml.safe_load(inv.read_text())["environments"]["staging"]["hosts"]:
        shown = run_driftcheck(tmp, "show", name, "-i", str(inv), "-f", "json", "-c", "apps")
        hosts[name] = json.loads(shown.stdout) if shown.returncode == 0 else {}
    return run, hosts


def seconds(stderr: str, host: str) -> float:
    """How long the host took, from its progress line ("failed  HOST  2.0s  why")."""
    m = re.search(rf"^driftcheck:\s+\w+\s+{host}\s+([0-9.]+)s", stderr, re.M)
    assert m, stderr
    return float(m[1])


def quiet(stderr: str) -> None:
    """No library chatter: every stderr line is one of ours."""
    for line in stderr.splitlines():
        assert line.startswith("driftcheck:"), stderr
    for noise in ("Traceback", "paramiko", "Bad file descriptor", "Socket exception"):
        assert noise not in stderr, stderr


# -- become: sudo ------------------------------------------------------------------


def test_a_sudo_user_collects_what_only_root_can_read(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", "stg-sudo"})
    run, hosts = collect(tmp_path, inv)
    assert run.returncode == 0, run.stderr
    assert hosts["stg-sudo"]["status"] == "ok"
    # The same login without become: the 0600 file cannot be read.
    entry = yaml.safe_load(inv.read_text())
    del entry["environments"]["staging"]["hosts"]["stg-sudo"]["become"]
    inv.write_text(yaml.safe_dump(entry))
    run, hosts = collect(tmp_path, inv)
    assert run.returncode == 4
    assert hosts["stg-sudo"]["status"] == "partial"
    assert SECRET_FILE in hosts["stg-sudo"]["error"]


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("stg-sudopw", "sudo wants a password for 'dc'; driftcheck runs sudo -n"),
        ("stg-tty", "sudo requires a tty for 'dc' (Defaults requiretty)"),
    ],
)
def test_sudo_that_would_prompt_fails_at_once_with_the_reason(
    lab: Lab, tmp_path: Path, host: str, says: str
) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", host})
    run, hosts = collect(tmp_path, inv)
    assert run.returncode == 4
    assert hosts[host]["status"] == "failed"
    assert hosts[host]["error"].startswith(says), hosts[host]["error"]
    assert seconds(run.stderr, host) < 5
    quiet(run.stderr)


def test_the_printed_sudoers_rule_is_all_it_needs(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", "stg-rule"})
    printed = run_driftcheck(tmp_path, "sudoers", "-i", str(inv))
    assert printed.returncode == 0, printed.stderr
    rule = [line for line in printed.stdout.splitlines() if not line.startswith("#")]
    assert rule and rule[0].startswith("dc ALL=(root) NOPASSWD: /usr/bin/env -i ")
    # Replace the host's "ALL with a password" rule by exactly the printed one.
    lab.write_file("stg-rule", "/etc/sudoers.d/dc", printed.stdout, mode=0o440)
    lab.exec("stg-rule", ["visudo", "-c", "-f", "/etc/sudoers.d/dc"])
    run, hosts = collect(tmp_path, inv)
    assert run.returncode == 0, run.stderr
    assert hosts["stg-rule"]["status"] == "ok"
    # ... and it grants nothing else without a password.
    other = lab.exec("stg-rule", ["su", "dc", "-c", "sudo -n id"], check=False)
    assert other.returncode != 0 and "password is required" in other.stderr


# -- jump hosts --------------------------------------------------------------------


def accepted(lab: Lab, host: str) -> int:
    return lab.log_text(host).count("Accepted publickey")


def test_hosts_behind_a_bastion_share_one_connection_to_it(lab: Lab, tmp_path: Path) -> None:
    hosts = {"prod-web1", "stg-behind1", "stg-behind2"}
    inv = write_inventory(lab, tmp_path / "inv.yaml", hosts)
    before = accepted(lab, "bast")
    run, seen = collect(tmp_path, inv)
    assert run.returncode == 0, run.stderr
    assert {seen["stg-behind1"]["status"], seen["stg-behind2"]["status"]} == {"ok"}
    assert accepted(lab, "bast") == before + 1  # one login for both hosts
    # A host behind the bastion is not reachable without it.
    entry = yaml.safe_load(inv.read_text())
    del entry["environments"]["staging"]["hosts"]["stg-behind1"]["proxy_jump"]
    entry["defaults"]["connect_timeout"] = 2
    inv.write_text(yaml.safe_dump(entry))
    run, seen = collect(tmp_path, inv)
    assert seen["stg-behind1"]["status"] == "failed"


def test_two_hops(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", "stg-behind1"})
    entry = yaml.safe_load(inv.read_text())
    host = entry["environments"]["staging"]["hosts"]["stg-behind1"]
    outer = lab.hosts["bast-m"].port
    host["proxy_jump"] = [f"root@127.0.0.1:{outer}", host["proxy_jump"]]
    inv.write_text(yaml.safe_dump(entry))
    before = accepted(lab, "bast-m"), accepted(lab, "bast")
    run, seen = collect(tmp_path, inv)
    assert run.returncode == 0, run.stderr
    assert seen["stg-behind1"]["status"] == "ok"
    assert (accepted(lab, "bast-m"), accepted(lab, "bast")) == (before[0] + 1, before[1] + 1)


def test_a_bastion_with_an_unknown_key_is_refused_before_login(lab: Lab, tmp_path: Path) -> None:
    port = lab.hosts["bast"].port
    known = tmp_path / "known_hosts"
    lines = lab.known_hosts.read_text().splitlines()
    known.write_text("".join(f"{x}\n" for x in lines if not x.startswith(f"[127.0.0.1]:{port} ")))
    inv = write_inventory(
        lab, tmp_path / "inv.yaml", {"prod-web1", "stg-behind1"}, known_hosts=str(known)
    )
    before = accepted(lab, "bast")
    run, seen = collect(tmp_path, inv)
    assert run.returncode == 4
    assert seen["stg-behind1"]["error"] == (
        f"jump host root@127.0.0.1:{port}: host key of [127.0.0.1]:{port} is not in {known}; "
        "refusing to connect. Verify its fingerprint and add it to known_hosts"
    )
    assert accepted(lab, "bast") == before
    quiet(run.stderr)


# -- keys in an agent ----------------------------------------------------------------


def test_a_passphrase_key_in_the_agent_without_identity_file(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", "stg-sudo"}, identity_file=None)
    home = tmp_path / "home"  # no ~/.ssh/id_* keys to fall back on
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["HOME"] = str(home)
    run, hosts = collect(tmp_path, inv, env)
    assert run.returncode == 4
    assert "no key to log in to" in hosts["stg-sudo"]["error"]
    with Agent(lab) as agent:
        agent.add(lab.encrypted_key("correct horse"), "correct horse")
        run, hosts = collect(tmp_path, inv, {**env, **agent.env})
    assert run.returncode == 0, run.stderr
    assert hosts["stg-sudo"]["status"] == "ok"
    # Agent forwarding was never asked for: sshd made no agent socket on the host.
    assert hosts["stg-sudo"]["sections"]["apps"]["facts"]["agent"] == "0"


def test_the_default_keys_without_identity_file(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", "stg-sudo"}, identity_file=None)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_bytes(lab.identity_file.read_bytes())
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    run, hosts = collect(tmp_path, inv, {**env, "HOME": str(home)})
    assert run.returncode == 0, run.stderr
    assert hosts["stg-sudo"]["status"] == "ok"


def test_an_encrypted_identity_file_not_in_the_agent_says_so(lab: Lab, tmp_path: Path) -> None:
    key = lab.encrypted_key("battery staple")
    inv = write_inventory(
        lab, tmp_path / "inv.yaml", {"prod-web1", "stg-sudo"}, identity_file=str(key)
    )
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    run = subprocess.run(
        ["python3", "-m", "driftcheck", "collect", "-i", str(inv)],
        capture_output=True, text=True, check=False, timeout=60,
        env={**env, "DRIFTCHECK_DB": f"sqlite:///{tmp_path / 'dc.db'}"},
    )  # fmt: skip
    assert run.returncode == 4
    assert f"{key} is encrypted and the ssh-agent does not hold it; load it with ssh-add" in (
        run.stderr
    )


# -- ssh_config ----------------------------------------------------------------------


def test_ssh_config_aliases_when_asked_for(lab: Lab, tmp_path: Path) -> None:
    port = lab.hosts["stg-sudo"].port
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host stg-alias\n  HostName 127.0.0.1\n  Port {port}\n  User dc\n"
        f"  IdentityFile {lab.identity_file}\n  ForwardAgent yes\n"
    )
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1"})
    entry = yaml.safe_load(inv.read_text())
    entry["environments"]["staging"]["hosts"] = {"stg-alias": {"roles": ["web"], "become": "sudo"}}
    # The inventory wins where both say something: leave port and user to the file.
    entry["defaults"] = {k: v for k, v in entry["defaults"].items() if k not in ("port", "user")}
    entry["environments"]["production"]["hosts"]["prod-web1"]["user"] = "root"
    inv.write_text(yaml.safe_dump(entry))
    run, hosts = collect(tmp_path, inv)
    assert run.returncode == 4
    assert hosts["stg-alias"]["error"].startswith("cannot resolve 'stg-alias'")
    assert (
        "ssh_config is not read: if it is a Host alias there, set ssh_config: true"
        in (hosts["stg-alias"]["error"])
    )
    entry["defaults"]["ssh_config"] = str(config)
    inv.write_text(yaml.safe_dump(entry))
    run, hosts = collect(tmp_path, inv)
    assert run.returncode == 0, run.stderr
    assert hosts["stg-alias"]["status"] == "ok"
    assert hosts["stg-alias"]["sections"]["apps"]["facts"]["agent"] == "0"
    assert run.stderr.count(f"warning: {config}:6: ignoring 'ForwardAgent yes'") == 1


# -- stalls and refusals -----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("stg-hung", "no SSH banner from 127.0.0.1:{port} within 2s"),
        ("stg-banner", "SSH key exchange with 127.0.0.1:{port} timed out after 2s"),
        ("stg-auth", "authentication as 'root' on 127.0.0.1:{port} timed out after 2s"),
    ],
)
def test_connect_timeout_bounds_the_whole_handshake(
    lab: Lab, tmp_path: Path, host: str, says: str
) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", host}, connect_timeout=2)
    run, hosts = collect(tmp_path, inv)
    assert run.returncode == 4
    assert hosts[host]["error"].startswith(says.format(port=lab.hosts[host].port))
    assert 1.9 <= seconds(run.stderr, host) < 4
    quiet(run.stderr)


def test_a_refused_key_says_refused(lab: Lab, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    inv = write_inventory(
        lab, tmp_path / "inv.yaml", {"prod-web1", "stg-sudo"}, identity_file=str(stranger)
    )
    run, hosts = collect(tmp_path, inv)
    port = lab.hosts["stg-sudo"].port
    assert hosts["stg-sudo"]["error"].startswith(
        f"authentication as 'dc' on 127.0.0.1:{port} refused (offered: identity_file {stranger}"
    ), hosts["stg-sudo"]["error"]
    quiet(run.stderr)


# -- an Ansible inventory, as it is ---------------------------------------------------


def ansible_tree(lab: Lab, folder: Path) -> Path:
    """An Ansible inventory of three lab hosts: inline vars, group_vars, host_vars."""
    hosts = lab.hosts
    (folder / "group_vars").mkdir(parents=True)
    (folder / "host_vars").mkdir()
    (folder / "hosts.ini").write_text(
        "[prod]\n"
        f"prod-web1 ansible_host=127.0.0.1 ansible_port={hosts['prod-web1'].port}\n"
        "[stg]\n"
        f"stg-sudo ansible_host=127.0.0.1 ansible_port={hosts['stg-sudo'].port} ansible_user=dc"
        " ansible_become=true\n"
        f"stg-behind1 ansible_host={hosts['stg-behind1'].address}\n"
        "[web:children]\nprod\nstg\n"
    )
    known = f"-o UserKnownHostsFile={lab.known_hosts}"
    (folder / "group_vars" / "all.yml").write_text(
        f"ansible_user: root\nansible_ssh_private_key_file: {lab.identity_file}\n"
        f"ansible_ssh_common_args: '{known} -o StrictHostKeyChecking=no'\n"
    )
    (folder / "host_vars" / "stg-behind1.yml").write_text(
        f"ansible_ssh_common_args: '{known} -J root@127.0.0.1:{hosts['bast'].port}'\n"
    )
    return folder / "hosts.ini"


def test_an_ansible_inventory_without_rewriting(lab: Lab, tmp_path: Path) -> None:
    source = ansible_tree(lab, tmp_path / "ansible")
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        yaml.safe_dump(
            {
                "defaults": {"connect_timeout": 5, "command_timeout": 30},
                "ansible": {
                    "inventory": "ansible/hosts.ini",
                    "environments": {"production": "prod", "staging": "stg"},
                },
                "compare": {"reference": "production", "targets": ["staging"]},
                "collect": COLLECT,
            }
        )
    )
    run = run_driftcheck(tmp_path, "collect", "-i", str(inv))
    assert run.returncode == 0, run.stderr
    assert "collected 3/3 hosts completely" in run.stderr
    assert "group_vars/all.yml" in run.stderr and "StrictHostKeyChecking" in run.stderr
    # The oracle: what ansible-core itself makes of the same files (no user config).
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    listed = subprocess.run(
        ["ansible-inventory", "-i", str(source), "--list"],
        capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"), "HOME": str(tmp_path)},
    )  # fmt: skip
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
    shown = run_driftcheck(tmp_path, "hosts", "-i", str(inv), "--brief").stdout.splitlines()
    for line in shown:
        name, _, reach = line.split("  ")[:3]
        reach = reach.split(" via ")[0].removesuffix(" (sudo)")
        ours = hostvars[name]
        port = ours.get("ansible_port", 22)
        assert reach == f"{ours['ansible_user']}@{ours['ansible_host']}:{port}", line
    assert any("[staging: web]" in line and "via root@127.0.0.1:" in line for line in shown)
    detail = run_driftcheck(tmp_path, "hosts", "-i", str(inv)).stdout
    assert "ansible hosts.ini:4" in detail and "ansible group_vars/all.yml" in detail


def test_the_forced_command_key_of_the_readme(lab: Lab, tmp_path: Path) -> None:
    """The README's authorized_keys line: from= the controller, only the collection
    command, no shell or tunnel; the collection still works, nothing else runs."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith('from="'))
    public = " ".join(Path(f"{lab.identity_file}.pub").read_text().split()[:2])
    options = line.split(" ssh-ed25519 ")[0].replace("192.0.2.10", "127.0.0.1")
    lab.write_file(
        "stg-rule", "/home/dc/.ssh/authorized_keys", f"{options} {public}\n", 0o600, "dc:dc"
    )
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", "stg-rule"})
    lab.write_file("stg-rule", "/etc/sudoers.d/dc", run_driftcheck(
        tmp_path, "sudoers", "-i", str(inv)).stdout, mode=0o440)  # fmt: skip
    run, hosts = collect(tmp_path, inv)
    assert run.returncode == 0, run.stderr
    assert hosts["stg-rule"]["status"] == "ok"
    # Any other command is replaced by the forced one: "id" never runs.
    argv = ssh_argv(lab.identity_file, lab.known_hosts, lab.hosts["stg-rule"].port, "id", user="dc")
    shell = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=30, stdin=subprocess.DEVNULL
    )
    assert "uid=" not in shell.stdout, shell.stdout
