"""driftcheck.sshconfig against the oracle: what ``ssh -G`` evaluates for the same files.

Each folder of tests/inventories/ssh_config/ is a ~/.ssh: ``config`` (which may Include
files next to it) and ``hosts``, the names to look up. The folder is copied into a
temporary HOME, so neither side reads the machine's real ~/.ssh, and ``ssh -G -F``
evaluates it there. ``ssh -G`` prints its defaults for what the config leaves unset, so
the comparison fills the entry's None/() with the same defaults (read from ``ssh -G``
of an empty config) instead of guessing which of ssh's lines the config set.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.errors import InventoryError
from driftcheck.sshconfig import LocalFacts, SSHConfig, SSHConfigEntry
from tests.support.paths import INVENTORIES

CASES = INVENTORIES / "ssh_config"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "config").is_file())
#: ssh -G fields the entry answers for.
FIELDS = ("hostname", "port", "user", "identityfile", "identitiesonly", "proxyjump",
          "proxycommand", "userknownhostsfile", "stricthostkeychecking", "forwardagent",
          "hostkeyalias")  # fmt: skip
WEAK_STRICT = {"no", "false", "off", "accept-new"}


def ssh_binary() -> str:
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.fail(
            "the OpenSSH client is the oracle of these tests: apt-get install openssh-client"
        )
    return ssh


def ssh_g(config: Path, home: Path, name: str, *options: str) -> dict[str, list[str]]:
    """``ssh -G``'s evaluated configuration: keyword -> the values of its lines."""
    proc = subprocess.run(
        [ssh_binary(), "-G", "-F", str(config), *options, name],
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        keyword, _, value = line.partition(" ")
        if keyword in FIELDS:
            out.setdefault(keyword, []).append(value)
    return out


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A HOME of its own, for ssh (Include, ${HOME}) and for the code under test."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    yield home


def local_for(home: Path) -> LocalFacts:
    # ssh takes ~ and %d from the password database, but Include's glob ~ from $HOME.
    return dataclasses.replace(LocalFacts.current(), include_home=str(home))


def install(case: str, home: Path) -> Path:
    shutil.copytree(CASES / case, home / ".ssh", dirs_exist_ok=True)
    return home / ".ssh" / "config"


def expanded_by_ssh(config: Path, home: Path, name: str, raw: str) -> str:
    """How ssh expands an IdentityFile: -G prints it raw, but expands UserKnownHostsFile
    with the same function and tokens, so ask for a UserKnownHostsFile of that value."""
    return ssh_g(config, home, name, "-o", f'UserKnownHostsFile="{raw}"')["userknownhostsfile"][0]


def assert_like_ssh(entry: SSHConfigEntry, config: Path, home: Path, name: str) -> None:
    """The entry, with ssh's defaults where it is None/(), is what ssh -G evaluates."""
    ssh = ssh_g(config, home, name)
    default = ssh_g(Path(os.devnull), home, name)
    assert ssh["hostname"] == [entry.hostname or name.lower()]
    assert ssh["port"] == [str(entry.port or 22)]
    assert ssh["user"] == [entry.user or LocalFacts.current().user]
    assert ssh["identitiesonly"] == ["yes" if entry.identities_only else "no"]
    assert ssh.get("proxyjump", []) == ([entry.proxy_jump] if entry.proxy_jump else [])
    if entry.identity_files:
        expanded = [expanded_by_ssh(config, home, name, raw) for raw in ssh["identityfile"]]
        assert tuple(expanded) == entry.identity_files
    else:
        assert ssh["identityfile"] == default["identityfile"]
    known = ssh["userknownhostsfile"][0].split(" ")
    if entry.known_hosts is not None:
        # -G joins the files with spaces, so a file name with a space is only a prefix.
        assert f"{ssh['userknownhostsfile'][0]} ".startswith(f"{entry.known_hosts} ")
    elif known[0] not in ("/dev/null", "none"):
        assert known == default["userknownhostsfile"][0].split(" ")
    assert_warned_like_ssh(entry, ssh, default)


def assert_warned_like_ssh(
    entry: SSHConfigEntry, ssh: dict[str, list[str]], default: dict[str, list[str]]
) -> None:
    """A warning names each setting by which ssh would weaken checking or leak, and only those
    (and a UserKnownHostsFile of several files: driftcheck reads the first)."""
    known = ssh["userknownhostsfile"][0]
    several = known != default["userknownhostsfile"][0] and " " in known
    weakened = {
        "StrictHostKeyChecking": ssh["stricthostkeychecking"][0] in WEAK_STRICT,
        "UserKnownHostsFile": known.split(" ")[0] in ("/dev/null", "none") or several,
        "ForwardAgent": ssh["forwardagent"][0] != "no",
        "ProxyCommand": ssh.get("proxycommand", ["none"])[0] != "none",
        "HostKeyAlias": "hostkeyalias" in ssh,
    }
    for keyword, expected in weakened.items():
        warned = [w for w in entry.warnings if f"'{keyword} " in w]
        assert bool(warned) == expected, (keyword, entry.warnings)


def case_hosts() -> Iterator[tuple[str, str]]:
    for case in CASE_NAMES:
        for name in (CASES / case / "hosts").read_text().split():
            yield case, name


@pytest.mark.parametrize(("case", "name"), list(case_hosts()))
def test_lookup_matches_ssh_g(case: str, name: str, home: Path) -> None:
    config = install(case, home)
    entry = SSHConfig.load(config, local=local_for(home)).lookup(name)
    assert_like_ssh(entry, config, home, name)


def write(home: Path, text: str, name: str = "config") -> Path:
    path = home / ".ssh" / name
    path.write_text(text)
    return path


#: Small configs for one behaviour each, checked against ssh -G like the fixtures.
EDGE_CASES = {
    "include in an inactive block never matches": (
        "Host other\n  Include inc.conf\nHost *\n  Port 2001\n",
        {"inc.conf": "Port 1999\nHost *\n  User leaked\n"},
    ),
    "include from an active block starts active, Match inside does not leak": (
        "Host x\n  Include inc.conf\n  User after\n",
        {"inc.conf": "Port 2002\nHost nothing\n  User inside\n"},
    ),
    "negation only never matches": ("Host !x\n  Port 2003\n", {}),
    "negated pattern wins over a positive one": ("Host * !x\n  Port 2004\n", {}),
    "Host patterns are not comma lists": ("Host x,y\n  Port 2005\n", {}),
    "Match host is a comma list, negations win": ("Match host *,!x\n  Port 2006\n", {}),
    "Match user sees the local user before User": ("Match user root\n  Port 2007\n", {}),
    "ProxyCommand first hides ProxyJump": ("ProxyCommand none\nProxyJump j\n", {}),
    "ProxyJump none leaves room for a ProxyCommand": ("ProxyJump none\nProxyCommand nc %h\n", {}),
    "ProxyJump hides a later ProxyCommand": ("ProxyJump j\nProxyCommand nc %h\n", {}),
    "absolute include with a glob": ("Include ~/.ssh/parts/*\n", {"parts/a": "Port 2008\n"}),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_match_ssh_g(case: str, home: Path) -> None:
    text, others = EDGE_CASES[case]
    config = write(home, text)
    for name, content in others.items():
        (home / ".ssh" / name).parent.mkdir(parents=True, exist_ok=True)
        write(home, content, name)
    for host in ("x", "y"):
        entry = SSHConfig.load(config, local=local_for(home)).lookup(host)
        assert_like_ssh(entry, config, home, host)


def ssh_rejects(config: Path, home: Path) -> bool:
    proc = subprocess.run(
        [ssh_binary(), "-G", "-F", str(config), "x"],
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return proc.returncode != 0


#: Lines ssh refuses even in a block that does not apply: so does driftcheck, with PATH:LINE.
BAD_LINES = {
    "Port 0": "bad port '0'",
    "Port 65536": "bad port '65536'",
    "Port twenty": "bad port 'twenty'",
    "Port": "no argument after keyword 'Port'",
    "Port 22 23": "extra arguments",
    'User "unterminated': "invalid quotes",
    "IdentitiesOnly maybe": "IdentitiesOnly: unsupported option 'maybe'",
    "StrictHostKeyChecking sometimes": "unsupported option 'sometimes'",
    "Match nonsense x": "unsupported criterion 'nonsense'",
    "Match all host x": "'all' cannot be combined",
    "Match host": "missing argument for 'host'",
}


@pytest.mark.parametrize("line", sorted(BAD_LINES))
def test_malformed_line_is_one_error_line(line: str, home: Path) -> None:
    config = write(home, f"Host *\n  User u\nHost never-looked-up\n  {line}\n")
    with pytest.raises(InventoryError) as error:
        SSHConfig.load(config, local=local_for(home))
    message = str(error.value)
    assert message.startswith(f"{config}:4: ") and BAD_LINES[line] in message
    assert "\n" not in message
    assert ssh_rejects(config, home)


def test_unreadable_file_is_one_error_line(home: Path) -> None:
    missing = home / ".ssh" / "missing"
    with pytest.raises(InventoryError, match=r"^\S+/missing: cannot read ssh config: No such file"):
        SSHConfig.load(missing)
    with pytest.raises(InventoryError, match=r"\.ssh: cannot read ssh config: Is a directory$"):
        SSHConfig.load(home / ".ssh")


def test_include_loop_is_an_error_not_a_hang(home: Path) -> None:
    config = write(home, "Host *\n  User u\nInclude b.conf\n")
    write(home, "Include config\n", "b.conf")
    with pytest.raises(InventoryError) as error:
        SSHConfig.load(config, local=local_for(home))
    assert str(error.value) == f"{home}/.ssh/b.conf:1: Include loop: {config} includes itself again"
    assert ssh_rejects(config, home)


def test_include_depth_is_bounded_like_ssh(home: Path) -> None:
    for depth in range(20):
        write(home, f"Include f{depth + 1}\n", f"f{depth}")
    config = write(home, "Include f0\n")
    with pytest.raises(InventoryError, match="too many nested Includes"):
        SSHConfig.load(config, local=local_for(home))
    assert ssh_rejects(config, home)


def test_included_file_others_can_write_is_refused(home: Path) -> None:
    config = write(home, "Include shared.conf\n")
    os.chmod(write(home, "Port 2222\n", "shared.conf"), 0o666)
    with pytest.raises(InventoryError, match=r"config:1: bad owner or permissions on .*shared"):
        SSHConfig.load(config, local=local_for(home))
    assert ssh_rejects(config, home)


def test_match_exec_is_never_run_and_warned_about(home: Path) -> None:
    marker = home / "ran"
    config = write(
        home,
        f'Match host other exec "touch {marker}"\n  Port 1\n'
        f'Match host x exec "touch {marker}"\n  Port 2\n'
        "Match localuser root\n  Port 3\n",
    )
    entry = SSHConfig.load(config, local=local_for(home)).lookup("x")
    assert not marker.exists()
    assert entry.port is None
    assert entry.warnings == (
        f"{config}:3: skipping block 'Match host x exec \"touch {marker}\"': driftcheck does "
        "not evaluate 'exec' (and never runs commands from ssh_config)",
        f"{config}:5: skipping block 'Match localuser root': driftcheck does not evaluate "
        "'localuser' (and never runs commands from ssh_config)",
    )


def test_warning_lines_name_file_line_and_reason(home: Path) -> None:
    config = write(home, "Host x\n\n  StrictHostKeyChecking no\n  ForwardAgent yes\n")
    entry = SSHConfig.load(config, local=local_for(home)).lookup("x")
    assert entry.warnings == (
        f"{config}:3: ignoring 'StrictHostKeyChecking no': driftcheck always checks host keys "
        "against known_hosts",
        f"{config}:4: ignoring 'ForwardAgent yes': driftcheck never forwards the SSH agent to "
        "the hosts it inspects",
    )
    assert SSHConfig.load(config, local=local_for(home)).lookup("y").warnings == ()


def test_sources_name_where_each_value_came_from(home: Path) -> None:
    config = write(home, "Host x\n  HostName h\n  IdentityFile a\nHost *\n  IdentityFile b\n")
    entry = SSHConfig.load(config, local=local_for(home)).lookup("x")
    assert entry.sources == {"hostname": f"{config}:2", "identity_files": f"{config}:3, {config}:5"}


def test_unknown_token_is_an_error_only_where_it_applies(home: Path) -> None:
    config = write(home, "Host x\n  IdentityFile ~/.ssh/%Z\n")
    loaded = SSHConfig.load(config, local=local_for(home))
    assert loaded.lookup("y").identity_files == ()
    with pytest.raises(InventoryError, match=r"config:2: unknown token '%Z'"):
        loaded.lookup("x")
