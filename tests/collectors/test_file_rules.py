"""Exclusion globs and sensitive names: one definition, the same answer in Python and on
the host (mawk, busybox awk and sh ``case``)."""

from __future__ import annotations

import subprocess

import pytest

from driftcheck.collectors import file_rules
from driftcheck.collectors.file_rules import exclude_error, is_excluded, is_sensitive_name

# (pattern, path, excluded?)
CASES = [
    ("/etc/ssl/private", "/etc/ssl/private", True),
    ("/etc/ssl/private", "/etc/ssl/private/a/b.pem", True),
    ("/etc/ssl/private/", "/etc/ssl/private/x", True),
    ("/etc/ssl/private", "/etc/ssl/privateer", False),
    ("/etc/ssl/private", "/etc/ssl", False),
    ("/etc/ssl/**", "/etc/ssl", False),
    ("/etc/ssl/**", "/etc/ssl/certs/x.pem", True),
    ("/etc/*.conf", "/etc/a.conf", True),
    ("/etc/*.conf", "/etc/sub/a.conf", False),
    ("/etc/*.conf", "/etc/a.conf/inside", True),
    ("/etc/*", "/etc", False),
    ("/etc/a?c", "/etc/abc", True),
    ("/etc/a?c", "/etc/a/c", False),
    ("/etc/[ab]x", "/etc/bx", True),
    ("/etc/[!ab]x", "/etc/cx", True),
    ("/etc/[!ab]x", "/etc/ax", False),
    ("/etc/[!ab]x", "/etc//x", False),
    ("/etc/[]]x", "/etc/]x", True),
    ("/etc/**/*.bak", "/etc/a.bak", True),
    ("/etc/**/*.bak", "/etc/x/y/a.bak", True),
    ("/etc/**/*.bak", "/etc/x/y/a.bakery", False),
    ("/**/shadow", "/etc/shadow", True),
    ("/etc/a.b", "/etc/aXb", False),
    ("/etc/a+b(1)|$^{2}", "/etc/a+b(1)|$^{2}", True),
    ("/etc/a+b", "/etc/aab", False),
    ("/etc/back\\slash", "/etc/back\\slash", True),
    ("/etc/with space", "/etc/with space", True),
    ("/etc/it's", "/etc/it's", True),
    ("/etc/x", "/etc/x\\", False),
]


def test_python_answers() -> None:
    wrong = [(p, path) for p, path, want in CASES if is_excluded(path, [p]) is not want]
    assert not wrong


@pytest.mark.parametrize("awk", ["system", "busybox"])
def test_the_host_filter_agrees_with_python(awk: str, busybox_bin: str) -> None:
    """Every case through ``_dc_keep`` itself, run by mawk (Debian) and busybox awk (Alpine)."""
    for pattern, path, want in CASES:
        script = file_rules.keep_function([pattern]) + "_dc_keep\n"
        env = {"PATH": busybox_bin if awk == "busybox" else "/usr/bin:/bin", "LC_ALL": "C"}
        shell = "/usr/bin/busybox" if awk == "busybox" else "/bin/sh"
        proc = subprocess.run(
            [shell, "sh", "-c", script] if awk == "busybox" else [shell, "-c", script],
            input=path + "\n",
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert (proc.stdout == "") is want, (pattern, path, proc.stdout, proc.stderr)


def test_combined_patterns_and_no_patterns() -> None:
    assert not is_excluded("/etc/x", [])
    assert file_rules.keep_function([]) == "_dc_keep() { cat; }\n"
    both = ["/etc/ssl/private/", "/etc/**/*.dpkg-old"]
    assert is_excluded("/etc/ssl/private/k", both) and is_excluded("/etc/a/b.dpkg-old", both)
    assert not is_excluded("/etc/ssl/certs", both)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("etc/ssl", "is not absolute; write it from the root, such as /etc/ssl"),
        ("/etc/a\nb", "contains a newline or NUL byte; remove it"),
        ("/", "would exclude everything; remove it or name what to leave out"),
        ("/**", "would exclude everything; remove it or name what to leave out"),
        ("/etc/[a/b]", "has a [...] set with '/', '\\' or '['; a set matches one character"),
        ("/etc/[z-a]", "has a [...] set that is not valid (bad character range z-a)"),
    ],
)
def test_bad_patterns_say_why(pattern: str, why: str) -> None:
    error = exclude_error(pattern)
    assert error is not None and error.startswith(why)


SENSITIVE = [
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/shadow.dpkg-old",
    "/etc/gshadow~",
    "/etc/security/opasswd",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_rsa_key.rpmsave",
    "/root/.ssh/id_rsa",
    "/home/u/.ssh/id_ed25519",
    "/etc/nginx/tls/site.key",
    "/etc/krb5.keytab",
    "/root/.pgpass",
    "/root/.netrc",
    "/root/.git-credentials",
    "/root/.aws/credentials",
    "/etc/app/db-credentials.json",
    "/etc/ipsec.secrets",
    "/etc/ppp/chap-secrets",
    "/etc/ssl/private/anything",
    "/etc/letsencrypt/live/x/privkey.pem",
    "/etc/NetworkManager/system-connections/wifi.nmconnection",
]
PUBLIC = [
    "/etc/passwd",
    "/etc/shadowsocks.json",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/root/.ssh/id_rsa.pub",
    "/etc/ssl/certs/ca.pem",
    "/etc/ssl/private",
    "/etc/keys.conf",
    "/etc/hosts",
]


def test_sensitive_names() -> None:
    assert [p for p in SENSITIVE if not is_sensitive_name(p)] == []
    assert [p for p in PUBLIC if is_sensitive_name(p)] == []


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_the_host_name_test_agrees_with_python(shell: str, busybox_bin: str) -> None:
    """``_dc_sensitive`` on these names (the few that exist here hold no private key)."""
    body = (
        "nl='\n'\n"
        + file_rules.sensitive_function()
        + ('for p in "$@"; do if _dc_sensitive "$p"; then echo "$p"; fi; done\n')
    )
    argv = ["/usr/bin/busybox", "sh"] if shell == "busybox" else ["/bin/sh"]
    env = {"PATH": busybox_bin if shell == "busybox" else "/usr/bin:/bin", "LC_ALL": "C"}
    proc = subprocess.run(
        [*argv, "-c", body, "sh", *SENSITIVE, *PUBLIC],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert proc.stdout.split("\n")[:-1] == SENSITIVE
