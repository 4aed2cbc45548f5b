"""``users``: local user accounts, as /etc/passwd defines them (never the password field).

Why the file and not ``getent passwd``: getent asks every NSS source in
/etc/nsswitch.conf. LDAP/SSSD/NIS users then depend on the directory being
reachable (and on its size), not on the host's configuration, and nss-systemd
adds synthetic users (root and nobody a second time, DynamicUser= accounts)
that come and go with running services (systemd/systemd#15160). The local file
is what an administrator or a package changes on *this* host, so that is what
staging and production are compared on.

/etc/passwd is world-readable, so the collector works as an unprivileged user.
The second field (the password, or "x" pointing at /etc/shadow) is blanked *on
the host* by awk, so no password hash ever leaves it, even on a system without
shadow passwords. /etc/shadow is never read. Nothing else in the file is
secret, so the output is not scrubbed (scrubbing could rewrite a user named
e.g. "apikey" and turn a name into a hash).
"""

from __future__ import annotations

from driftcheck.model import ParseResult

from .base import Collector, id_number, without_password_field

#: At most this many lines are sent; a larger file is an error, not a silently cut list.
MAX_LINES = 100_000

# The password field never leaves the host (see without_password_field).
SHELL = without_password_field("/etc/passwd", MAX_LINES)

#: Fields of an /etc/passwd line (passwd(5)).
_FIELDS = 7


def parse(raw: str) -> ParseResult:
    """User name -> {uid, gid, gecos?, home, shell}.

    ``gecos`` is present only when non-empty. Lines are split on "\\n" only
    (not ``str.splitlines``: a GECOS field may hold U+2028 or U+0085, which are
    not line ends for libc). Blank lines, comments and lines without ":" are ignored;
    a line that names a user but has not the seven fields is an error for that
    user: it exists but cannot be read (glibc drops some such lines and fills
    in others with empty fields; either way the account is broken). A uid or
    gid that is not a number (NIS "+" entries) is kept as text. When a name
    appears twice, the first entry wins, as it does for getpwnam(3).
    """
    facts: dict[str, dict[str, object]] = {}
    errors: dict[str, str] = {}
    for line in raw.split("\n"):
        # glibc (nss_files) skips comment lines as well.
        if ":" not in line or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        name = fields[0]
        if not name or name in facts:
            continue
        if len(fields) != _FIELDS:
            errors.setdefault(
                name, f"malformed /etc/passwd entry: {len(fields)} fields, expected {_FIELDS}"
            )
            continue
        _name, _password, uid, gid, gecos, home, login_shell = fields
        user: dict[str, object] = {"uid": id_number(uid), "gid": id_number(gid)}
        if gecos:
            user["gecos"] = gecos
        user["home"] = home
        user["shell"] = login_shell
        facts[name] = user
        errors.pop(name, None)
    return ParseResult(dict(sorted(facts.items())), dict(sorted(errors.items())))


COLLECTOR = Collector(
    name="users",
    description="local users from /etc/passwd: uid, gid, gecos, home, shell (no passwords)",
    shell=SHELL,
    parse=parse,
    requires=("awk",),
    timeout=30.0,
)
