"""Config files become flat settings, so drift is reported per setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME, config_formats
from driftcheck.collectors.config_formats import detect, flatten, settings


def test_flatten_names() -> None:
    assert flatten({"a": {"b": [1, {"c": None}], "d.e": "x"}, "empty": {}}) == {
        "a.b[0]": 1,
        "a.b[1].c": None,
        'a."d.e"': "x",
        "empty": {},
    }


def test_ini_with_default_section_and_case() -> None:
    text = "top = 1\n[server]\nListen = 8080\n; comment\n[database]\npool_size: 20\nflag\n"
    assert settings("/etc/myapp/app.ini", text) == (
        "ini",
        {"top": "1", "server.Listen": "8080", "database.pool_size": "20", "database.flag": None},
    )


def test_conf_with_sections_is_ini() -> None:
    fmt, parsed = settings("/etc/myapp/app.conf", "[server]\nworkers = 4\n")  # type: ignore[misc]
    assert fmt == "ini" and parsed == {"server.workers": "4"}


def test_yaml_nested_and_multi_document() -> None:
    assert settings("/etc/app.yml", "db:\n  pool: 5\n  hosts: [a, b]\n") == (
        "yaml",
        {"db.pool": 5, "db.hosts[0]": "a", "db.hosts[1]": "b"},
    )
    assert settings("/etc/app.yaml", "a: 1\n---\nb: 2\n") == ("yaml", {"[0].a": 1, "[1].b": 2})


def test_json_and_toml() -> None:
    assert settings("/etc/app.json", '{"a": {"b": true}}') == ("json", {"a.b": True})
    assert settings("/etc/app.toml", "[tool]\nx = 1\n") == ("toml", {"tool.x": 1})


def test_env_file() -> None:
    text = "# comment\nexport DB_HOST=db.internal\nPOOL='5'\nEMPTY=\n"
    assert settings("/etc/myapp/app.env", text) == (
        "env",
        {"DB_HOST": "db.internal", "POOL": "5", "EMPTY": ""},
    )


def test_sshd_config_real_file() -> None:
    text = Path("/etc/ssh/sshd_config").read_text()
    fmt, parsed = settings("/etc/ssh/sshd_config", text)  # type: ignore[misc]
    assert fmt == "ssh"
    assert parsed["include"] == "/etc/ssh/sshd_config.d/*.conf"
    assert "subsystem" in parsed


def test_sshd_repeated_keywords_and_match_blocks() -> None:
    text = "Port 22\nPort 2222\nPermitRootLogin no\nMatch User backup\n  PermitRootLogin yes\n"
    assert settings("/etc/ssh/sshd_config", text) == (
        "ssh",
        {
            "port": ["22", "2222"],
            "permitrootlogin": "no",
            "match User backup.permitrootlogin": "yes",
        },
    )


def test_sysctl_conf() -> None:
    text = "# x\nnet.core.somaxconn = 1024\n-kernel/yama/ptrace_scope=1\n"
    assert settings("/etc/sysctl.d/99-x.conf", text) == (
        "sysctl",
        {"net.core.somaxconn": "1024", "kernel.yama.ptrace_scope": "1"},
    )


NGINX = """\
user www-data;
events { worker_connections 1024; }
http {
    include mime.types;
    server { listen 80; server_name a.example.com;
             location / { proxy_pass http://127.0.0.1:8080; } }
    server { listen 443 ssl; server_name "b.example.com"; }
}
"""


def test_nginx_blocks_and_repeats() -> None:
    fmt, parsed = settings("/etc/nginx/nginx.conf", NGINX)  # type: ignore[misc]
    assert fmt == "nginx"
    assert parsed["events.worker_connections"] == "1024"
    assert parsed["http.server[0].listen"] == "80"
    assert parsed["http.server[1].listen"] == "443 ssl"
    assert parsed["http.server[0].location(args)"] == "/"
    assert parsed["http.server[0].location.proxy_pass"] == "http://127.0.0.1:8080"
    assert parsed["http.server[1].server_name"] == '"b.example.com"'


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/etc/app.json", "{not json"),
        ("/etc/app.yaml", "a: [1, 2"),
        ("/etc/app.toml", "x = = 1"),
        ("/etc/nginx/nginx.conf", "http { listen 80;"),
        ("/etc/app.conf", "this is\njust prose\nnot settings at all\n"),
        ("/etc/motd", "Welcome\n"),
    ],
)
def test_unparseable_falls_back_to_text(path: str, text: str) -> None:
    assert settings(path, text) is None


def test_detection_by_name() -> None:
    def fmt(path: str, text: str = "") -> str | None:
        found = detect(path, text)
        return found[0] if found else None

    assert fmt("/etc/default/grub") == "env"
    assert fmt("/etc/ssh/sshd_config.d/50-cloud.conf") == "ssh"
    assert fmt("/etc/mysql/my.cnf") == "ini"
    assert fmt("/etc/app.conf", "key = value\n") == "keyvalue"
    assert fmt("/etc/haproxy.conf", "global {\n}\n") == "nginx"


def test_nan_is_text_and_alias_bombs_fall_back_to_text() -> None:
    assert settings("/etc/a.yaml", "x: .nan\n") == ("yaml", {"x": "nan"})
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefg"):
        prev = "abcdefg"[i]
        refs = ", ".join([f"*{prev}"] * 10)
        bomb += f"{name}: &{name} [{refs}]\n"
    assert settings("/etc/bomb.yaml", bomb) is None


def test_a_parser_that_fails_outright_leaves_the_file_as_text_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stands for a bug not found yet, in our parsers or the libraries under them: it
    # must cost one file its per-setting comparison, never the run.
    def broken(_text: str) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(config_formats, "parse_ini", broken)
    found = config_formats.settings("/etc/app.ini", "[a]\nb = 1\n")
    assert found == config_formats.Unparsed("ini", "ini parser failed: KeyError: 'surprise'")
    raw = "F\tfile\t644 root root 10\tabc\ttext\t/etc/app.ini\n|[a]\n|b = 1\n"
    fact = BY_NAME["files"].parse(raw).facts["/etc/app.ini"]
    assert fact["content"] == "[a]\nb = 1\n"
    assert fact["content_note"] == (
        "compared as text: ini parser failed: KeyError: 'surprise'; "
        "compared without # and ; comments and blank lines"
    )


def test_sshd_compares_tokens_not_spacing() -> None:
    one = settings("/etc/ssh/sshd_config", 'AcceptEnv LANG LC_*\nBanner "/etc/a  b"\n')
    two = settings("/etc/ssh/sshd_config", 'AcceptEnv\tLANG   LC_*  \nBanner   "/etc/a  b"\n')
    assert one == two == ("ssh", {"acceptenv": "LANG LC_*", "banner": '"/etc/a  b"'})
    assert settings("/etc/ssh/ssh_config", 'X "a  b\n') == ("ssh", {"x": '"a b'})


@pytest.mark.parametrize(
    ("path", "prefixes"),
    [
        ("/etc/hosts", ("#",)),
        ("/etc/fstab", ("#",)),
        ("/etc/crontab", ("#",)),
        ("/etc/cron.d/backup", ("#",)),
        ("/var/spool/cron/crontabs/root", ("#",)),
        ("/etc/pam.d/sshd", ("#",)),
        ("/etc/app/odd.conf", ("#",)),
        ("/etc/resolv.conf", ("#", ";")),
        ("/etc/app/x.ini", ("#", ";")),
        ("/etc/systemd/system/app.service", ("#", ";")),
        ("/etc/java/net.properties", ("#", "!")),
        ("/etc/sudoers", ("#",)),
        ("/etc/motd", None),
        ("/etc/app/notes.txt", None),
        ("/etc/init.d/ssh", None),
    ],
)
def test_comment_syntax_by_name(path: str, prefixes: tuple[str, ...] | None) -> None:
    syntax = config_formats.comment_syntax(path)
    assert (syntax.prefixes if syntax else None) == prefixes


def test_content_lines_drop_comments_and_blank_lines_only() -> None:
    hash_only = config_formats.comment_syntax("/etc/crontab")
    assert hash_only is not None
    text = "#!/bin/sh\n# a comment\n\n   \n  # indented\n*/5 * * * * root run # not cut\r\n; kept\n"
    assert config_formats.content_lines(text, hash_only) == (
        "#!/bin/sh\n*/5 * * * * root run # not cut\r\n; kept\n"
    )
    sudoers = config_formats.comment_syntax("/etc/sudoers")
    assert sudoers is not None
    text = "# c\n#includedir /etc/sudoers.d\n#include /etc/x\n#1000 ALL=(ALL) ALL\n#x\n"
    assert config_formats.content_lines(text, sudoers) == (
        "#includedir /etc/sudoers.d\n#include /etc/x\n#1000 ALL=(ALL) ALL\n"
    )
    assert config_formats.content_lines("# only\n\n", hash_only) == ""
