"""Secrets are replaced by keyed hashes before anything is stored or shown."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftcheck.redact import REDACTED, Redactor, is_secret_name

KEY = b"k" * 32


@pytest.mark.parametrize(
    "line",
    [
        "password = hunter2",
        "db_password: 'hunter2'",
        '  "apiToken": "hunter2",',
        "export AWS_SECRET_ACCESS_KEY=hunter2",
        "SECRET_KEY_BASE=hunter2",
        "client-credentials hunter2;",
        "DATABASE_URL=postgres://app:hunter2@db.internal/app",
        "<password>hunter2</password>",
        "net.ipv4.tcp_fastopen_key = hunter2",
        "\tauth_token\thunter2",
    ],
)
def test_secret_values_never_survive(line: str) -> None:
    scrubbed = Redactor(KEY).scrub_line(line)
    assert "hunter2" not in scrubbed
    assert REDACTED.search(scrubbed)


@pytest.mark.parametrize(
    "line",
    [
        "worker_processes 4;",
        "keepalive_timeout 65;",
        "PasswordAuthentication no",
        "PubkeyAuthentication yes",
        "listen 80;",
        "# password policy is documented elsewhere",
        "kernel.keys.maxkeys = 200",
        "",
    ],
)
def test_ordinary_settings_stay_readable(line: str) -> None:
    assert Redactor(KEY).scrub_line(line) == line


def test_same_secret_same_token_changed_secret_changed_token() -> None:
    r = Redactor(KEY)
    assert r.scrub_line("password = a") == r.scrub_line("password = a")
    assert r.scrub_line("password = a") != r.scrub_line("password = b")
    # Another installation's key gives other tokens: they cannot be looked up.
    assert Redactor(b"x" * 32).scrub_line("password = a") != r.scrub_line("password = a")


def test_scrubbing_is_idempotent() -> None:
    r = Redactor(KEY)
    once = r.scrub_text("password = a\nname = b\n")
    assert r.scrub_text(once) == once


def test_quotes_are_kept_so_files_still_parse() -> None:
    scrubbed = Redactor(KEY).scrub_line('  "password": "x y",')
    assert scrubbed.startswith('  "password": "<redacted:') and scrubbed.endswith('>",')


def test_name_words() -> None:
    assert is_secret_name("dbPassword") and is_secret_name("API-KEY") and is_secret_name("token")
    assert not is_secret_name("public_key_path") and not is_secret_name("keepalive")


def test_key_file_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "hmac.key"
    first = Redactor.from_key_file(path).token("v")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Redactor.from_key_file(path).token("v") == first


def test_private_key_blocks_are_replaced_whole() -> None:
    pem = [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
        "QyNTUxOQAAACBhunter2hunter2hunter2hunter2hunter2hunter2hunter2AAAA",
        "-----END OPENSSH PRIVATE KEY-----",
    ]
    r = Redactor(KEY)
    out = r.scrub_lines(["before", *pem, "after"])
    assert out[0] == "before" and out[-1] == "after"
    assert out[1] == pem[0] and out[3] == pem[-1] and REDACTED.fullmatch(out[2])
    assert "hunter2" not in "\n".join(out)
    # The token is the hash of the key lines alone, as stored by earlier versions: an
    # upgrade must not make every private key look changed.
    assert out[2] == r.token("\n".join(pem[1:-1]))
    assert r.scrub_lines(out) == out


def test_yaml_block_scalar_secret_is_replaced() -> None:
    text = "db:\n  password: |\n    hunter2\n    more-hunter2\n  host: db.internal\n"
    out = Redactor(KEY).scrub_text(text)
    assert "hunter2" not in out
    assert out.endswith("  host: db.internal\n")
    assert yaml_load(out)["db"]["host"] == "db.internal"


def yaml_load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_scrub_text_keeps_line_endings() -> None:
    r = Redactor(KEY)
    assert r.scrub_text("a = 1\n") == "a = 1\n"
    assert r.scrub_text("a = 1") == "a = 1"
    assert r.scrub_text("") == ""


@pytest.mark.parametrize(
    "line",
    [
        "$db_password = 'hunter2';",
        "define('DB_PASSWORD', 'hunter2');",
        '<Resource name="jdbc/app" user="u" password="hunter2"/>',
        '<add key="DbPassword" value="hunter2"/>',
        "machine db.internal login app password hunter2",
        "Authorization: Bearer hunter2",
        'proxy_set_header Authorization "Basic hunter2";',
        "Server=db;Database=app;User Id=u;Password=hunter2;",
        'conninfo = "host=db user=u password=hunter2"',
        "url = https://api.example.com/v1?user=u&token=hunter2",
        "olcRootPW: hunter2",
        "bindpw hunter2",
        "masterauth hunter2",
        '{"db":{"user":"u","password":"hunter2"}}',
    ],
)
def test_inline_and_labelled_secrets(line: str) -> None:
    assert "hunter2" not in Redactor(KEY).scrub_line(line), line


@pytest.mark.parametrize(
    "line",
    [
        "proxy_pass http://127.0.0.1:8080;",
        "fastcgi_pass unix:/run/php/php8.2-fpm.sock;",
        "ssl_certificate_key /etc/ssl/private/site.key;",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "HostKeyAlgorithms ssh-ed25519,rsa-sha2-512",
        "MaxAuthTries 3",
        'auth_basic "Restricted";',
        "password_encryption = scram-sha-256",
        "session.cookie_httponly = 1",
        "net.ipv4.ipfrag_secret_interval = 0",
        "net.bridge.bridge-nf-pass-vlan-input-dev = 0",
    ],
)
def test_public_settings_stay_readable(line: str) -> None:
    assert Redactor(KEY).scrub_line(line) == line


def test_pem_without_end_is_redacted_to_the_end() -> None:
    out = Redactor(KEY).scrub_lines(["-----BEGIN PRIVATE KEY-----", "AAAAhunter2", "BBBBhunter2"])
    assert len(out) == 2 and "hunter2" not in "\n".join(out)


# What a field test found in reports and the database: secrets with a shape of their own,
# under any name or none.
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJodW50ZXIyIn0"
    ".c2lnbmF0dXJlLWh1bnRlcjItc2lnbmF0dXJl"
)


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (
            '"key": "-----BEGIN PRIVATE KEY-----\\nMIIEhunter2\\n-----END PRIVATE KEY-----\\n",',
            "hunter2",
        ),
        ("jwt: " + JWT, JWT[40:]),
        ("session " + JWT, JWT[40:]),
        ("db.internal:5432:app:app:hunter2", "hunter2"),
        ("note: AKIAQAVSYEEFNPAXX5I6 rotated", "AKIAQAVSYEEFNPAXX5I6"),
        (
            "github = ghp_vcgr4C659ApiBkXhP8uQJovskSlWcFA4tKo4",
            "ghp_vcgr4C659ApiBkXhP8uQJovskSlWcFA4tKo4",
        ),
        ("url: https://hooks.slack.com/services/T0/B0/hunter2hunter2", "hunter2"),
        ("alice:$apr1$A4vJFNdl$MHhEvgEL5crnIq6kOUlExD", "MHhEvgEL5crnIq6kOUlExD"),
    ],
)
def test_secrets_found_by_their_shape(line: str, secret: str) -> None:
    scrubbed = Redactor(KEY).scrub_text(line)  # scrub_text: also the rules that span lines
    assert secret not in scrubbed and REDACTED.search(scrubbed), scrubbed


def test_a_key_in_a_quoted_string_over_lines_keeps_the_string() -> None:
    lines = [
        'key: "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQhunter2\\n\\',
        "  AoGCCqhunter2\\n\\",
        '  -----END EC PRIVATE KEY-----\\n"',
    ]
    out = Redactor(KEY).scrub_lines(lines)
    assert out[0] == 'key: "-----BEGIN EC PRIVATE KEY-----'
    assert out[1].startswith("  <redacted:") and out[2] == lines[2]
    assert "hunter2" not in "\n".join(out)


@pytest.mark.parametrize(
    "line",
    [
        "proxy_set_header X-Api-Key hunter2;",
        'add_header X-Auth-Token "hunter2" always;',
        'more_set_headers "X-Secret: hunter2";',
        "fastcgi_param DB_PASSWORD hunter2;",
        'RequestHeader set X-Api-Key "hunter2"',
        "http-request set-header Authorization hunter2",
        "curl -H 'X-Api-Key: hunter2' https://example.com",
        "Cookie: sid=hunter2; theme=dark",
        "Set-Cookie: session=hunter2; Path=/; HttpOnly",
        "Authorization: hunter2",
        "db_host = db1 # old password was hunter2",
        "The staging root password is hunter2.",
        "mysqldump -u backup -phunter2 app",
        "sshpass -p 'hunter2' ssh web1",
        "docker login -u ci -p hunter2 registry.example.com",
        "redis-cli -a hunter2 ping",
        "/usr/local/bin/deploy --api-key hunter2",
        "    user ops insecure-password hunter2",
        "headers: {X-Api-Key: hunter2, Accept: application/json}",
    ],
)
def test_secrets_announced_by_a_header_directive_option_or_sentence(line: str) -> None:
    assert "hunter2" not in Redactor(KEY).scrub_line(line), line


def test_a_kubernetes_env_value_follows_its_name() -> None:
    lines = ["- name: DB_PASSWORD", "  value: hunter2", "- name: LOG_LEVEL", "  value: info"]
    out = Redactor(KEY).scrub_lines(lines)
    assert out[1].startswith("  value: <redacted:") and out[2:] == lines[2:]


def test_a_secret_flow_map_is_redacted_value_by_value() -> None:
    out = Redactor(KEY).scrub_line('auth = { user = "app", pass = "hunter2" }')
    assert out.startswith('auth = { user = "<redacted:') and out.endswith('>" }')
    assert "hunter2" not in out


@pytest.mark.parametrize(
    "line",
    [
        "deploy ALL=(ALL) NOPASSWD: ALL",
        "ops ALL=(root) NOPASSWD: /usr/bin/systemctl restart app, PASSWD: ALL",
        "backup ALL=(postgres) NOPASSWD:SETENV: /usr/bin/pg_dumpall",
        "auth\trequired\t\t\tpam_permit.so",
        "password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok yescrypt",
        "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so",
        "PASS_MAX_DAYS\t99999",
        "auth_method: scram-sha-256",
        "Tokens expire after one hour; refresh them with the CLI.",
        "sshpass -f /etc/deploy.pass ssh web1 uptime",
        "Set the user and password in the vault",
    ],
)
def test_sudoers_pam_and_prose_stay_readable(line: str) -> None:
    assert Redactor(KEY).scrub_line(line) == line


@pytest.mark.parametrize(
    "line",
    [
        "password hunter two",  # not a PAM rule: "hunter" is no PAM control
        "password\tsufficient\tpam_mysql.so user=app passwd=hunter2",
        "deploy ALL=(root) NOPASSWD: /usr/bin/mysqladmin --password=hunter2 flush-logs",
    ],
)
def test_what_pam_and_sudoers_lines_hold_is_still_found(line: str) -> None:
    assert "hunter" not in Redactor(KEY).scrub_line(line), line
