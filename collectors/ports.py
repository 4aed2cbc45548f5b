"""``ports``: listening TCP sockets and bound UDP sockets, with the programs that own them.

Source: ``ss -lntupe`` (iproute2: Debian, RHEL family, Alpine with iproute2).
Where ss is missing (busybox-only Alpine, minimal containers) the section reads
/proc/net/{tcp,tcp6,udp,udp6} and finds the owners the way ss itself does: by
matching the socket inodes against the ``socket:[INODE]`` links in
/proc/PID/fd, with the program name from /proc/PID/comm. So both sources give
the same facts for the same sockets.

Key: ``PROTO ADDRESS:PORT`` (``tcp 0.0.0.0:22``, ``tcp [::]:22``,
``udp 127.0.0.53%lo:53``); value: the sorted names of the programs owning the
socket. Never pids or queue sizes: they change by nature. Names are cut the
way ss cuts them (at the first ")"), and at the first newline. Addresses are
kept as bound: a socket bound to the host's own IP address has a key of its
own on each host; /proc cannot show a bound device, so ``%lo`` only appears
where ss is used.

Who collects matters. Only root sees the processes of every user: collected as
anyone else, the program list of another user's socket is *unknown*, not empty,
so the key goes to the parser's errors ("permission denied") and is left out of
the facts. The section says who ran it (``#uid``, from ``id -u``) and both
sources give each socket's owner uid (ss ``-e`` prints ``uid:N`` unless it is
0; /proc/net has a uid column). Not root, a socket's list is trusted only when
the socket is the collecting user's own and some process of it was seen: a
socket created by another user (systemd's socket activation hands root's
sockets to services) may be held by processes the collecting user cannot see.
As root an empty list is the truth as far as this PID namespace can tell: a
kernel socket (nfsd, lockd) or one of a process in another PID namespace.
Output without ``#uid`` (stored by older versions) cannot say who collected it:
there, only an empty list is unknown.

What is *not* drift:

- client-side sockets. TCP: only LISTEN sockets are kept. UDP: only
  unconnected sockets (state UNCONN / 07), the UDP equivalent of a listener;
  connected UDP sockets are clients.
- ports the kernel picked at random. A port inside the host's ephemeral range
  (net.ipv4.ip_local_port_range) and not in net.ipv4.ip_local_reserved_ports
  is an autobound or bind(0) socket: a DNS client's UDP socket, rpc.statd,
  avahi's second socket, Java RMI. Those are folded into one key per address,
  ``udp 0.0.0.0:(ephemeral)``, and that key is volatile. A service meant to
  listen on a fixed port inside the range belongs in ip_local_reserved_ports
  (otherwise a client may take its port first); reserved ports are reported
  by number.

IPv6 wildcard sockets are ``[::]`` whether or not they also accept IPv4 (new
ss prints those as ``*``, which old ss used for the IPv4 wildcard; /proc cannot
tell them apart at all). ss is therefore run once per family (``-4``, ``-6``)
so that ``*`` is never ambiguous.

Nothing in this output is a secret: no scrubbing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections import defaultdict
from dataclasses import dataclass, field

from driftcheck.model import ParseResult

from .base import DENIED, Collector

#: ss output (per family) or kept /proc lines above this size are an error, not a cut list.
MAX_BYTES = 8_000_000

# Why a variable and ${#out}: the output is bounded without a pipe, so ss's
# exit status is not lost (POSIX sh has no pipefail).
SHELL = f"""\
echo "#uid $(id -u 2>/dev/null)"
echo "#range $(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)"
echo "#reserved $(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null)"
if command -v ss >/dev/null 2>&1; then
  for f in 4 6; do
    out=$(ss -lntupe -$f) || exit
    if [ "${{#out}}" -gt {MAX_BYTES} ]; then
      echo "ss -lntupe -$f printed more than {MAX_BYTES} bytes" >&2; exit 3
    fi
    echo "#ss$f"
    printf '%s\\n' "$out"
  done
  exit 0
fi
if [ ! -r /proc/net/tcp ] || ! command -v awk >/dev/null 2>&1; then
  echo "no ss, and no /proc/net/tcp or awk to read instead: sockets cannot be listed" >&2
  exit 193
fi
# The kernel prints addresses as 32-bit words in host byte order.
set -- $(printf '\\001\\000' | od -An -tu2 2>/dev/null)
case ${{1:-}} in 1) echo "#byteorder little" ;; 256) echo "#byteorder big" ;; esac
inodes=
for f in tcp tcp6 udp udp6; do
  [ -r /proc/net/$f ] || continue
  # 0A = TCP_LISTEN; 07 = TCP_CLOSE, which for UDP means bound but not connected.
  case $f in tcp*) st=0A ;; *) st=07 ;; esac
  lines=$(awk -v st=$st 'NR > 1 && $4 == st' /proc/net/$f) || exit
  if [ "${{#lines}}" -gt {MAX_BYTES} ]; then
    echo "/proc/net/$f: more than {MAX_BYTES} bytes of bound sockets" >&2; exit 3
  fi
  echo "#proc $f"
  [ -n "$lines" ] || continue
  printf '%s\\n' "$lines"
  inodes="$inodes $(printf '%s\\n' "$lines" | awk '{{ printf "%s ", $10 }}')"
done
[ -n "${{inodes## }}" ] || exit 0
# Owners, as ss finds them: the socket:[INODE] links in /proc/PID/fd. One ls
# for all processes; /proc/self/fd makes sure ls prints a "DIR:" header before
# each listing even when the glob matches a single directory. Unreadable fd
# directories (other users' processes) are skipped: the parser knows from #uid
# and the uid column which sockets' owners it therefore cannot know.
ls -l /proc/self/fd /proc/[0-9]*/fd 2>/dev/null | awk -v want="$inodes" '
  BEGIN {{ n = split(want, w, " "); for (i = 1; i <= n; i++) keep["socket:[" w[i] "]"] = 1 }}
  /^\\/proc\\/[^\\/]*\\/fd:$/ {{ split($0, p, "/"); pid = p[3]; next }}
  pid ~ /^[0-9]+$/ && ($NF in keep) && !(($NF, pid) in seen) {{
    seen[$NF, pid] = 1
    name = ""; f = "/proc/" pid "/comm"
    if ((getline name < f) <= 0) name = ""
    close(f)
    ino = $NF; gsub(/[^0-9]/, "", ino)
    print "#owner " ino " " name
  }}'
"""

#: Linux's default net.ipv4.ip_local_port_range, used when the host did not say.
DEFAULT_EPHEMERAL = (32768, 60999)
EPHEMERAL = "(ephemeral)"
#: Keys of sockets on kernel-chosen ports: never drift (see the module docstring).
VOLATILE = (f"*:{EPHEMERAL}",)

# ss: ("name",pid=1,fd=3) since iproute2 4.x; ("name",1,3) before. A program name
# may hold spaces, tabs, quotes or newlines (prctl PR_SET_NAME takes any bytes).
_USER_RE = re.compile(r'\("(.*?)",(?:pid=)?\d+,(?:fd=)?\d+\)', re.DOTALL)
_LISTENING = {("tcp", "LISTEN"), ("udp", "UNCONN")}
_PROC_STATES = {"tcp": "0A", "tcp6": "0A", "udp": "07", "udp6": "07"}


@dataclass
class _Host:
    """What the parser learned about the host from the section's header lines."""

    ephemeral: tuple[int, int] = DEFAULT_EPHEMERAL
    reserved: list[tuple[int, int]] = field(default_factory=list)
    little_endian: bool = True
    #: the collecting user's uid (``#uid``); None when the output does not say
    uid: str | None = None

    def unknown_owner(self, socket: _Socket, names: set[str]) -> str:
        """Why the collecting user cannot know ``socket``'s programs; "" when it can.

        Root sees every process of its PID namespace. Anyone else sees only their
        own processes, so the list is known only for their own sockets, and only
        when they saw a process holding it (see the module docstring).
        """
        if self.uid == "0":
            return ""
        if not self.uid:  # None, or "" when the host had no id(1)
            return "" if names else UNKNOWN_USER
        if not names or socket.uid != self.uid:
            return DENIED
        return ""

    def port_text(self, port: str) -> str:
        """The port as it appears in the key: its number, or (ephemeral)."""
        if not port.isascii() or not port.isdigit():
            return port
        number = int(port)
        low, high = self.ephemeral
        if low <= number <= high and not any(a <= number <= b for a, b in self.reserved):
            return EPHEMERAL
        return str(number)


def _port_range(text: str) -> tuple[int, int]:
    parts = text.split()
    if len(parts) == 2 and all(p.isascii() and p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return DEFAULT_EPHEMERAL


def _reserved(text: str) -> list[tuple[int, int]]:
    # "8080,9000-9010" (empty when nothing is reserved).
    ranges = []
    for item in text.strip().split(","):
        low, _, high = item.partition("-")
        if low.isascii() and low.isdigit() and (not high or (high.isascii() and high.isdigit())):
            ranges.append((int(low), int(high or low)))
    return ranges


def _ipv6_text(address: ipaddress.IPv6Address) -> str:
    # Like inet_ntop (what ss prints): v4-mapped as ::ffff:a.b.c.d; Python before
    # 3.13 would print ::ffff:7f00:1.
    mapped = address.ipv4_mapped
    return f"::ffff:{mapped}" if mapped is not None else str(address)


def _ss_address(text: str, family: str) -> str:
    """An ss local address (without port) in the one spelling used for keys.

    ``*`` is the wildcard of the block's family; IPv6 addresses are bracketed
    with the interface after the bracket (``[fe80::1]%eth0``), whatever the ss
    version printed (old ss: ``:::22``, ``fe80::1%eth0:546``).
    """
    if text == "*":
        return "0.0.0.0" if family == "4" else "[::]"
    if family == "4":
        address, sep, scope = text.partition("%")
        with contextlib.suppress(ValueError):  # not an address: keep it as printed
            address = str(ipaddress.IPv4Address(address))
        return address + sep + scope
    inner, scope = text, ""
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        scope = rest
    elif "%" in text:
        inner, _, iface = text.partition("%")
        scope = "%" + iface
    with contextlib.suppress(ValueError):  # not an address: keep it as printed
        inner = _ipv6_text(ipaddress.IPv6Address(inner))
    return f"[{inner}]{scope}"


def _proc_address(hexaddr: str, little_endian: bool) -> str | None:
    """A /proc/net address (32-bit words in host byte order) as text; None if garbled."""
    try:
        raw = bytes.fromhex(hexaddr)
    except ValueError:
        return None
    if len(raw) not in (4, 16):
        return None
    if little_endian:
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    return f"[{_ipv6_text(ipaddress.IPv6Address(raw))}]"


def _programs(names: list[str]) -> list[str]:
    """Program names cut the way ss cuts them, so that both sources agree.

    ss scans /proc/PID/stat with ``%[^)]``, so a name ends at its first ")";
    the /proc fallback reads /proc/PID/comm line by line, so a name also ends
    at its first newline. Empty names are dropped.
    """
    cut = (name.split("\n", 1)[0].split(")", 1)[0] for name in names)
    return [name for name in cut if name]


def _is_open(record: str) -> bool:
    """True while an ss record's process list has not been closed yet.

    ss cuts names at ")" (see :func:`_programs`), so the first "))" after
    ``users:((`` closes the list, whatever ``-e`` prints after it.
    """
    start = record.find("users:((")
    return start >= 0 and "))" not in record[start:]


@dataclass(frozen=True)
class _Socket:
    """One listening socket as either source shows it."""

    proto: str
    address: str
    port: str
    #: program names (ss), or None when they come from ``#owner`` lines by inode
    names: list[str] | None
    inode: str
    #: the uid that owns the socket, None when the source does not say (old ss output)
    uid: str | None


#: Why a listening socket's programs are unknown in output that does not say who
#: collected it (stored before ``#uid``); not being root is ``base.DENIED``.
UNKNOWN_USER = "programs not visible, and the collecting user is unknown (collect as root)"


def parse(raw: str) -> ParseResult:
    """``PROTO ADDRESS:PORT`` -> sorted program names (see the module docstring).

    Understands both sources of the shell: ``#ss4``/``#ss6`` blocks of ss
    output, and ``#proc FILE`` blocks of /proc/net lines followed by
    ``#owner INODE NAME`` lines. Header lines, sockets in other states and
    garbage are ignored. A program name containing a newline continues an ss
    record on the next line, so lines are joined while a record's
    ``users:((`` list is still open. A key whose programs the collecting user
    cannot know is an error, not a fact.
    """
    host = _Host()
    sockets: list[_Socket] = []
    owners: dict[str, set[str]] = defaultdict(set)
    records: dict[str, list[str]] = {"ss4": [], "ss6": []}
    block = ""
    for line in raw.split("\n"):
        if block in records and records[block] and _is_open(records[block][-1]):
            records[block][-1] += "\n" + line
        elif line.startswith("#") and _header(host, line):
            continue
        elif line in ("#ss4", "#ss6") or line.startswith("#proc "):
            block = line[1:]
        elif line.startswith("#owner "):
            _, inode, name = [*line.split(" ", 2), ""][:3]
            owners[inode].update(_programs([name]))
        elif block in records:
            fields = line.split(None, 6)
            if len(fields) >= 6 and fields[0] in ("tcp", "udp"):
                records[block].append(line)
        elif block.startswith("proc "):
            socket = _proc_socket(block[len("proc ") :], line, host.little_endian)
            if socket is not None:
                sockets.append(socket)
    for name, lines in records.items():
        sockets.extend(s for s in (_ss_socket(name[-1], r) for r in lines) if s is not None)
    return _facts(host, sockets, owners)


def _header(host: _Host, line: str) -> bool:
    """Take in one of the section's ``#range``/``#reserved``/``#byteorder``/``#uid`` lines."""
    word, _, value = line.partition(" ")
    if word == "#range":
        host.ephemeral = _port_range(value)
    elif word == "#reserved":
        host.reserved = _reserved(value)
    elif word == "#byteorder":
        host.little_endian = value != "big"
    elif word == "#uid":
        host.uid = value.strip()
    else:
        return False
    return True


def _facts(host: _Host, sockets: list[_Socket], owners: dict[str, set[str]]) -> ParseResult:
    """One key per socket address: its programs, or an error when they are unknown.

    Several sockets may share a key (SO_REUSEPORT, ephemeral ports folded
    together): one socket of unknown programs makes the whole key unknown.
    """
    facts: dict[str, set[str]] = defaultdict(set)
    errors: dict[str, str] = {}
    for socket in sockets:
        names = owners.get(socket.inode, set()) if socket.names is None else set(socket.names)
        key = f"{socket.proto} {socket.address}:{host.port_text(socket.port)}"
        why = host.unknown_owner(socket, names)
        if why:
            errors[key] = why
        facts[key].update(names)
    return ParseResult(
        {key: sorted(facts[key]) for key in sorted(facts) if key not in errors},
        dict(sorted(errors.items())),
    )


# ss -e: "uid:N" (printed only when N is not 0) and "ino:N" (always) after the process list.
_SS_UID = re.compile(r"(?:^|\s)uid:(\d+)")
_SS_INODE = re.compile(r"(?:^|\s)ino:(\d+)")


def _ss_socket(family: str, record: str) -> _Socket | None:
    """One ss record as a socket; None unless listening."""
    netid, state, _recvq, _sendq, local, _peer, *rest = record.split(None, 6)
    if (netid, state) not in _LISTENING:
        return None
    address, sep, port = local.rpartition(":")
    if not sep:
        return None
    text = rest[0] if rest else ""
    names = _programs(_USER_RE.findall(text))
    # What follows the process list; the names themselves could hold "uid:".
    details = text[text.rfind("))") + 2 :] if "users:((" in text else text
    inode = _SS_INODE.search(details)
    uid = _SS_UID.search(details)
    # Without ino: this is ss output without -e (older versions of this section).
    owner = (uid.group(1) if uid else "0") if inode else None
    return _Socket(
        netid, _ss_address(address, family), port, names, inode.group(1) if inode else "", owner
    )


def _proc_socket(proto_file: str, line: str, little_endian: bool) -> _Socket | None:
    """One /proc/net line as a socket (programs by inode); None unless listening."""
    # sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    fields = line.split()
    if len(fields) < 10 or _PROC_STATES.get(proto_file) != fields[3]:
        return None
    local, _, port_hex = fields[1].partition(":")
    address = _proc_address(local, little_endian)
    try:
        port = str(int(port_hex, 16))
    except ValueError:
        return None
    if address is None:
        return None
    uid = fields[7] if fields[7].isascii() and fields[7].isdigit() else None
    return _Socket(proto_file.rstrip("6"), address, port, None, fields[9], uid)


COLLECTOR = Collector(
    name="ports",
    description="listening TCP and bound UDP sockets with their programs (ss -lntupe; /proc/net)",
    shell=SHELL,
    parse=parse,
    timeout=60.0,
    volatile=VOLATILE,
)
