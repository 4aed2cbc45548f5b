"""The files section's shell against hostile and unreadable trees, as root and as nobody."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.drift import compare
from driftcheck.findings import DriftReport, State
from driftcheck.model import AppSource, CollectSettings, ParseResult
from driftcheck.redact import Redactor
from tests.support.helpers import inventory, snapshot

FILES = BY_NAME["files"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run(settings: CollectSettings, as_nobody: bool = False) -> tuple[str, ParseResult]:
    argv = [*(NOBODY if as_nobody else []), "sh", "-c", FILES.shell_for(settings)]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    ).stdout
    return out, FILES.parse(out)


def test_a_name_with_a_newline_cannot_make_us_read_another_file(tmp_path: Path) -> None:
    trap = tmp_path / "conf.d" / "x\n/etc"
    trap.mkdir(parents=True)
    (trap / "shadow").write_text("root:planted-hash:19000::::::\n")
    out, parsed = run(CollectSettings(files=(f"{tmp_path}/conf.d/",)))
    assert "planted-hash" not in out
    assert "/etc/shadow" not in parsed.facts and "/etc/shadow" not in parsed.errors


def test_unreadable_directories_make_their_files_unknown() -> None:
    # Under /tmp itself: pytest's own temporary folders are closed to other users.
    tmp_path = Path(tempfile.mkdtemp(prefix="dc-files-"))
    locked = tmp_path / "app" / "sub"
    locked.mkdir(parents=True)
    (locked / "b.conf").write_text("b = 1\n")
    (tmp_path / "app" / "a.conf").write_text("a = 1\n")
    locked.chmod(0o700)
    tmp_path.chmod(0o755)
    entries = (f"{tmp_path}/app/", f"{locked}/*.conf")
    _, as_root = run(CollectSettings(files=entries))
    assert f"{locked}/b.conf" in as_root.facts and not as_root.errors
    _, as_nobody = run(CollectSettings(files=entries), as_nobody=True)
    assert f"{locked}/b.conf" not in as_nobody.facts
    assert as_nobody.errors == {str(locked): "permission denied (run as a user that can read it)"}
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("d.json", '{"db":{"user":"u","password":"hunter2x"}}\n'),
        ("d.yaml", "db: {user: u, password: hunter2x}\n"),
        ("d.yaml", "- password: hunter2x\n"),
        ("d.yaml", "password:\n    hunter2x\n"),
        ("d.toml", 'db = { password = "hunter2x" }\n'),
        ("d.yaml", "env: [{name: DB_PASSWORD, value: hunter2x}]\n"),
        ("d.ini", "[db]\npassword =\n    hunter2x\n"),
    ],
)
def test_secrets_only_parsing_reveals_are_redacted(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    out, _ = run(CollectSettings(files=(str(path),)))
    scrubbed = FILES.scrub(out, Redactor(b"k" * 32))  # type: ignore[misc]
    assert "hunter2x" not in scrubbed
    parsed = FILES.parse(scrubbed)
    assert any("<redacted:" in str(v) for v in parsed.facts.values())


@pytest.mark.parametrize("name", ["files", "apps", "os"])
def test_busybox_gives_the_same_facts(tmp_path: Path, name: str, busybox_bin: str) -> None:
    """Alpine has only busybox: its stat, find, awk, sha256sum, readlink and ash must
    give the same facts as Debian's tools for the same files."""
    tree = tmp_path / "etc"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.ini").write_text("[db]\nhost = x\n")
    (tree / "sub" / "b.txt").write_text("no newline")
    (tree / "link.ini").symlink_to("a.ini")
    (tree / "sub" / "id_ed25519").write_text("secret\n")
    (tree / "sub" / "skipped").mkdir()
    (tree / "sub" / "skipped" / "x").write_text("x\n")
    (tree / "hosts").write_text("# comment\n127.0.0.1 localhost\n")
    os.mkfifo(tree / "fifo")
    settings = CollectSettings(
        files=(f"{tree}/", f"{tree}/*.ini", f"{tree}/link.ini"),
        exclude=(f"{tree}/sub/skip*",),
        apps=(AppSource("cmd", "command", "echo 1.2"), AppSource("f", "file", f"{tree}/a.ini")),
    )
    shell = BY_NAME[name].shell_for(settings)
    debian = subprocess.run(
        ["sh", "-c", shell],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    alpine = subprocess.run(
        ["/usr/bin/busybox", "sh", "-c", shell],
        capture_output=True,
        check=True,
        env={"PATH": busybox_bin, "LC_ALL": "C"},
    )
    collector = BY_NAME[name]

    def facts(out: bytes) -> ParseResult:
        text = out.decode()
        scrubbed = collector.scrub(text, Redactor(KEY)) if collector.scrub else text
        return collector.parse(scrubbed)

    assert facts(alpine.stdout) == facts(debian.stdout)
    if name == "files":
        assert facts(debian.stdout).facts[f"{tree}/fifo"]["type"] == "fifo"


KEY = b"k" * 32


def collect(
    settings: CollectSettings, as_nobody: bool = False, busybox: str | None = None
) -> tuple[str, ParseResult]:
    """The section as the pipeline keeps it: run (dash or busybox), scrubbed, parsed."""
    argv = ["/usr/bin/busybox", "sh"] if busybox else ["sh"]
    proc = subprocess.run(
        [*(NOBODY if as_nobody else []), *argv, "-c", FILES.shell_for(settings)],
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
        env={"PATH": busybox or "/usr/bin:/bin", "LC_ALL": "C"},
    )
    raw = proc.stdout.decode("utf-8", "backslashreplace")
    scrubbed = FILES.scrub(raw, Redactor(KEY))  # type: ignore[misc]
    return raw, FILES.parse(scrubbed)


def shared_tmp() -> Path:
    """A folder nobody can enter (pytest's own are closed to other users)."""
    folder = Path(tempfile.mkdtemp(prefix="dc-files-"))
    folder.chmod(0o755)
    return folder


def owner(st: os.stat_result) -> dict[str, str]:
    return {
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "owner": pwd.getpwuid(st.st_uid).pw_name,
        "group": grp.getgrgid(st.st_gid).gr_name,
    }


@pytest.fixture
def links() -> Iterator[Path]:
    """etc/app/ with symlinks pointing inside, outside (to a planted secret), nowhere."""
    root = shared_tmp()
    app = root / "etc" / "app"
    (app / "sub").mkdir(parents=True)
    outside = root / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "planted.txt").write_text("planted-outside-text\n")
    (outside / "dir" / "inner.txt").write_text("planted-inner-text\n")
    (app / "a.txt").write_text("inside\n")
    (app / "to-inside").symlink_to("a.txt")
    (app / "to-outside").symlink_to(outside / "planted.txt")
    (app / "to-dir").symlink_to(outside / "dir")
    (app / "to-shadow").symlink_to("/etc/shadow")
    (app / "sub" / "nowhere").symlink_to("../missing")
    yield root
    shutil.rmtree(root)


@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
def test_symlinks_in_a_directory_are_links_never_followed(links: Path, as_nobody: bool) -> None:
    app = links / "etc" / "app"
    raw, parsed = collect(CollectSettings(files=(f"{app}/", f"{app}/to-*")), as_nobody)
    assert "planted-" not in raw and "root:" not in raw
    for name in ("to-inside", "to-outside", "to-dir", "to-shadow", "sub/nowhere"):
        path = app / name
        assert parsed.facts[str(path)] == {
            "type": "symlink",
            "link": os.readlink(path),
            "broken": not path.exists(),
        }
    assert not any(k.startswith(str(links / "outside")) for k in parsed.facts)
    assert not any(k.startswith("/etc/shadow") for k in parsed.facts)


def test_a_symlink_named_itself_is_described_with_its_target(links: Path) -> None:
    app = links / "etc" / "app"
    named = (str(app / "to-outside"), str(app / "to-shadow"), str(app / "to-dir"))
    raw, parsed = collect(CollectSettings(files=named))
    assert "root:" not in raw  # /etc/shadow, even named through a link, is never read
    target = links / "outside" / "planted.txt"
    text = target.read_bytes()
    assert parsed.facts[named[0]] == {
        "type": "symlink",
        "link": str(target),
        "broken": False,
        "target_type": "file",
        **owner(target.stat()),
        "size": len(text),
        "sha256": hashlib.sha256(text).hexdigest(),
        "content": text.decode(),
    }
    shadow = Path("/etc/shadow")
    assert parsed.facts[named[1]] == {
        "type": "symlink",
        "link": "/etc/shadow",
        "broken": False,
        "target_type": "file",
        **owner(shadow.stat()),
        "size": shadow.stat().st_size,
        "keyed_hash": Redactor(KEY).token(hashlib.sha256(shadow.read_bytes()).hexdigest()),
        "content_note": "sensitive: content not read",
    }
    # A link to a directory: the directory's own metadata, not its files.
    assert parsed.facts[named[2]]["target_type"] == "directory"
    assert "planted-inner-text" not in raw


@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
def test_subdirectories_and_special_files_are_facts(as_nobody: bool) -> None:
    root = shared_tmp()
    tree = root / "etc"
    (tree / "private").mkdir(parents=True)
    (tree / "private").chmod(0o750)
    os.chown(tree / "private", 0, grp.getgrnam("adm").gr_gid)
    os.mkfifo(tree / "fifo", 0o620)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tree / "sock"))
    os.mknod(tree / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(tree / "loop", 0o640 | stat.S_IFBLK, os.makedev(7, 0))
    _, parsed = collect(CollectSettings(files=(f"{tree}/",)), as_nobody)
    kinds = {"fifo": "fifo", "sock": "socket", "null": "char-device", "loop": "block-device"}
    for name, kind in kinds.items():
        assert parsed.facts[str(tree / name)] == {"type": kind, **owner(os.lstat(tree / name))}
    private = str(tree / "private")
    if as_nobody:  # its entries cannot be listed: unknown, and so is the directory
        assert parsed.errors == {private: "permission denied (run as a user that can read it)"}
    else:
        assert parsed.facts[private] == {"type": "directory", **owner(os.lstat(private))}
        assert parsed.facts[private]["group"] == "adm" and not parsed.errors
    shutil.rmtree(root)


@pytest.fixture
def excluded_tree() -> Iterator[Path]:
    root = shared_tmp()
    etc = root / "etc"
    for sub in ("ssl/private", "ssl/certs", "app/cache/deep", "app/conf.d"):
        (etc / sub).mkdir(parents=True)
    for name in ("ssl/private/k.pem", "app/cache/deep/x", "app/conf.d/a.conf.bak"):
        (etc / name).write_text("planted-excluded\n")
    (etc / "ssl/certs/ca.txt").write_text("kept\n")
    (etc / "app/conf.d/a.conf").write_text("kept = 1\n")
    (etc / "app/skip me.txt").write_text("planted-excluded\n")
    yield root
    shutil.rmtree(root)


def exclusions(etc: Path) -> CollectSettings:
    return CollectSettings(
        files=(f"{etc}/", f"{etc}/app/*", f"{etc}/ssl/private/k.pem", f"{etc}/ssl/private/*"),
        exclude=(f"{etc}/ssl/private/", f"{etc}/app/cache/**", "/**/*.bak", f"{etc}/app/skip me*"),
    )


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_excluded_paths_are_never_read(excluded_tree: Path, shell: str, busybox_bin: str) -> None:
    etc = excluded_tree / "etc"
    raw, parsed = collect(exclusions(etc), busybox=busybox_bin if shell == "busybox" else None)
    assert "planted-excluded" not in raw
    assert "/private" not in raw and "/deep" not in raw and ".bak" not in raw and "skip" not in raw
    assert parsed.facts[f"{etc}/app/cache"]["type"] == "directory"  # /** keeps the directory
    assert parsed.facts[f"{etc}/ssl/certs/ca.txt"]["content"] == "kept\n"
    assert parsed.facts[f"{etc}/app/conf.d/a.conf#kept"] == "1"
    assert not parsed.errors


def test_config_origin_walks_the_same_files(excluded_tree: Path) -> None:
    settings = exclusions(excluded_tree / "etc")
    origin = BY_NAME["config_origin"]
    out = subprocess.run(
        ["sh", "-c", origin.shell_for(settings)], capture_output=True, text=True, check=True
    ).stdout
    listed = {line.split("\t")[2] for line in out.splitlines() if line.startswith("P\t")}
    _, parsed = collect(settings)
    described = {k for k, v in parsed.facts.items() if isinstance(v, dict)}
    described -= {k for k in described if parsed.facts[k]["type"] == "directory"}
    assert listed == described
    assert "planted-excluded" not in out and "/private" not in out


def test_excluded_entries_are_left_out_of_the_script() -> None:
    settings = CollectSettings(
        files=("/etc/shadow", "/etc/ssl/private/*", "/etc/hosts"), exclude=("/etc/s*", "/etc/ssl/")
    )
    shell = FILES.shell_for(settings)
    assert "_dc_entry /etc/hosts follow" in shell
    assert "_dc_entry /etc/shadow" not in shell and "_dc_globdir /etc/ssl/private" not in shell


PEM_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nplanted-key-material\n-----END OPENSSH PRIVATE KEY-----\n"
)
CERT = "-----BEGIN CERTIFICATE-----\nMIIBpublic\n-----END CERTIFICATE-----\n"
#: name -> content; every one is sensitive, by its name or by what it holds
SECRETS = {
    "shadow": "root:planted-hash-1:19000::::::\n",
    "gshadow-": "root:planted-hash-2::\n",
    "shadow.dpkg-old": "root:planted-hash-3:19000::::::\n",
    "ssh/ssh_host_ed25519_key": PEM_KEY,
    "ssh/id_rsa": "planted-not-even-a-key\n",
    "tls/site.key": "planted-site-key\n",
    "tls/bundle.pem": CERT + PEM_KEY,
    "notes.txt": PEM_KEY,  # an innocent name: found by its first line
    "home/.pgpass": "db:5432:*:app:planted-pgpass\n",
    "home/.netrc": "machine x login u password planted-netrc\n",
    "home/.git-credentials": "https://u:planted-git@example.com\n",
    "app/aws-credentials": "[default]\nkey = planted-aws\n",
    "ssl/private/anything": "planted-private\n",
}


@pytest.fixture
def secrets_tree() -> Iterator[Path]:
    root = shared_tmp()
    etc = root / "etc"
    for name, text in SECRETS.items():
        (etc / name).parent.mkdir(parents=True, exist_ok=True)
        (etc / name).write_text(text)
        (etc / name).chmod(0o644)  # so nobody reads them too: only the rule protects them
    (etc / "tls" / "cert.pem").write_text(CERT)  # a certificate alone is public
    (root / "link-to-shadow").symlink_to(etc / "shadow")
    yield root
    shutil.rmtree(root)


def sealed(path: Path) -> dict[str, object]:
    """What a sensitive file's fact must be, from os.stat and hashlib."""
    st = path.stat()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "type": "file",
        **owner(st),
        "size": st.st_size,
        "keyed_hash": Redactor(KEY).token(digest),
        "content_note": "sensitive: content not read",
    }


@pytest.mark.parametrize("how", ["root", "nobody", "busybox"])
def test_sensitive_files_are_never_read_as_text(
    secrets_tree: Path, how: str, busybox_bin: str
) -> None:
    etc = secrets_tree / "etc"
    settings = CollectSettings(
        files=(f"{etc}/", f"{etc}/*", f"{etc}/shadow", str(secrets_tree / "link-to-shadow"))
    )
    busybox = busybox_bin if how == "busybox" else None
    raw, parsed = collect(settings, as_nobody=how == "nobody", busybox=busybox)
    assert "planted" not in raw
    for name in SECRETS:
        assert parsed.facts[str(etc / name)] == sealed(etc / name), name
    link = parsed.facts[str(secrets_tree / "link-to-shadow")]
    assert link == {
        "type": "symlink",
        "link": str(etc / "shadow"),
        "broken": False,
        "target_type": "file",
        **{k: v for k, v in sealed(etc / "shadow").items() if k != "type"},
    }
    assert parsed.facts[str(etc / "tls" / "cert.pem")]["content"] == CERT
    assert not any(k.startswith(str(etc / "tls" / "bundle.pem") + "#") for k in parsed.facts)
    assert not any(
        "sha256" in v
        for v in parsed.facts.values()
        if isinstance(v, dict) and v.get("content_note") == "sensitive: content not read"
    )


def test_a_changed_secret_is_still_drift(secrets_tree: Path) -> None:
    shadow = secrets_tree / "etc" / "shadow"
    settings = CollectSettings(files=(str(shadow),))
    before = collect(settings)[1].facts[str(shadow)]
    shadow.write_text("root:planted-hash-2:19000::::::\n")  # the same size
    after = collect(settings)[1].facts[str(shadow)]
    assert before["keyed_hash"] != after["keyed_hash"]
    assert before["size"] == after["size"]


def test_the_controller_seals_text_an_older_script_sent() -> None:
    """Output of a script from before this rule (stored runs are re-scrubbed and
    re-parsed): /etc/shadow and a key sent as text lose their text and plain hash."""
    digest, public = "a" * 64, "b" * 64
    raw = (
        f"F\tfile\t640 root shadow 32\t{digest}\ttext\t/etc/shadow\n"
        "|root:planted-hash:19000::::::\n"
        f"F\tfile\t644 root root 90\t{digest}\ttext\t/etc/app/notes\n"
        "|-----BEGIN RSA PRIVATE KEY-----\n|planted\n|-----END RSA PRIVATE KEY-----\nN\tnoeol\n"
        f"F\tfile\t644 root root 5\t{digest}\ttext\t/etc/app/link\nL\t../shadow\n|planted\n"
        f"F\tfile\t644 root root 5\t{public}\ttext\t/etc/hostname\n|web1\n"
    )
    redactor = Redactor(KEY)
    once = FILES.scrub(raw, redactor)  # type: ignore[misc]
    assert "planted" not in once and digest not in once and public in once
    assert FILES.scrub(once, redactor) == once  # type: ignore[misc]  # never hashes the token
    facts = FILES.parse(once).facts
    for path in ("/etc/shadow", "/etc/app/notes", "/etc/app/link"):
        fact = facts[path]
        assert fact["keyed_hash"] == redactor.token(digest) and "content" not in fact
    assert facts["/etc/app/link"]["link"] == "../shadow"
    assert facts["/etc/hostname"]["content"] == "web1\n"


def test_a_sensitive_checksum_never_kept_unkeyed() -> None:
    raw = f"F\tfile\t640 root shadow 32\t{'a' * 64}\tsensitive\t/etc/shadow\n"
    parsed = FILES.parse(raw)  # not scrubbed: the plain checksum must not become a fact
    assert parsed.facts == {}
    assert "not keyed" in parsed.errors["/etc/shadow"]


def crontab_facts(text: str) -> dict[str, object]:
    lines = "".join("|" + line + "\n" for line in text.splitlines())
    digest = hashlib.sha256(text.encode()).hexdigest()
    raw = f"F\tfile\t644 root root {len(text)}\t{digest}\ttext\t/etc/crontab\n{lines}"
    return FILES.parse(raw).facts


def test_a_comment_edit_is_no_drift_and_a_real_edit_shows_its_diff() -> None:
    """Through the diff engine: the content lines are compared, the full text is kept
    (volatile ``#(text)``: counted, shown by ``driftcheck show``, never drift)."""
    inv = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
    prod = "# m h dom mon dow user command\n17 * * * * root run-parts /etc/cron.hourly\n"

    def report(staging: str) -> DriftReport:
        snaps = {
            "prod1": snapshot("prod1", "production", ["web"], {"files": crontab_facts(prod)}),
            "stg1": snapshot("stg1", "staging", ["web"], {"files": crontab_facts(staging)}),
        }
        return compare(inv, snaps, [FILES], "now")

    commented = report("# edited in staging, same jobs\n\n" + prod)
    assert commented.findings == () and commented.volatile_skipped["files"] == 1
    assert crontab_facts(prod)["/etc/crontab#(text)"] == prod
    edited = report(prod.replace("17 *", "42 *"))
    (finding,) = edited.findings
    assert (finding.key, finding.state) == ("/etc/crontab", State.CHANGED)
    (change,) = finding.detail
    assert change.path == "content"
    assert "-17 * * * *" in change.diff and "+42 * * * *" in change.diff
