"""``groups``: local groups, as /etc/group defines them (never the group password).

Read from the file rather than ``getent group`` for the same reason as
:mod:`collectors.users`: LDAP/SSSD/NIS and nss-systemd groups depend on the
network and on running services, not on the host's configuration.

/etc/group is world-readable; the second field (group password or "x") is
blanked on the host by awk, and /etc/gshadow is never read. The members listed
are the supplementary members written in the file; users whose *primary* group
it is (passwd's gid) are not repeated here, they are in the ``users`` facts.
"""

from __future__ import annotations

from driftcheck.model import ParseResult

from .base import Collector, id_number, without_password_field

#: At most this many lines are sent; a larger file is an error, not a silently cut list.
MAX_LINES = 100_000

# The password field never leaves the host (see without_password_field).
SHELL = without_password_field("/etc/group", MAX_LINES)

#: Fields of an /etc/group line (group(5)); glibc also accepts a line without
#: the member list ("name:x:gid"), so that is read as a group without members.
_FIELDS = 4


def parse(raw: str) -> ParseResult:
    """Group name -> {gid, members}; members sorted, without duplicates or empty names.

    The member list is a set for the system (the order in the file means
    nothing), so it is sorted and de-duplicated; a trailing or doubled comma
    adds no member and blanks around a name are dropped, as glibc does. Lines
    are split on "\\n" only; blank lines, comments and lines without ":" are
    ignored; a line without the member list is a group without members (glibc
    reads it so); a named line with another number of fields is an error for
    that group; the first of two entries with the same name wins.
    """
    facts: dict[str, dict[str, object]] = {}
    errors: dict[str, str] = {}
    for line in raw.split("\n"):
        if ":" not in line or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        name = fields[0]
        if not name or name in facts:
            continue
        if len(fields) not in (_FIELDS - 1, _FIELDS):
            errors.setdefault(
                name, f"malformed /etc/group entry: {len(fields)} fields, expected {_FIELDS}"
            )
            continue
        # glibc skips blanks around member names ("a, b" is a and b).
        listed = fields[3].split(",") if len(fields) == _FIELDS else []
        members = sorted({m.strip() for m in listed if m.strip()})
        facts[name] = {"gid": id_number(fields[2]), "members": members}
        errors.pop(name, None)
    return ParseResult(dict(sorted(facts.items())), dict(sorted(errors.items())))


COLLECTOR = Collector(
    name="groups",
    description="local groups from /etc/group: gid and members (no passwords)",
    shell=SHELL,
    parse=parse,
    requires=("awk",),
    timeout=30.0,
)
