"""``cron``: system and user crontabs line by line, and the periodic job scripts by hash.

Read: ``/etc/crontab`` and ``/etc/anacrontab``; every file in ``/etc/cron.d``;
user crontabs in ``/etc/crontabs`` (Alpine busybox), ``/var/spool/cron/crontabs``
(Debian) and ``/var/spool/cron`` (RHEL cronie); the scripts in
``/etc/cron.{hourly,daily,weekly,monthly,yearly}`` and ``/etc/periodic/*``
(Alpine), of which name, mode, owner and sha256 are enough.  A directory that is
a symlink to one already read (Alpine's spool -> ``/etc/crontabs``) is read once.

A crontab gives one fact per file and one per effective line, so that a cron
line added in staging is reported as exactly that line, while reordering or a
changed line still changes the file's fact.  Comments and blank lines are not
entries (Debian's ``crontab -e`` header carries an install date); environment
lines (``MAILTO=``, ``PATH=``) are.  Command lines may carry passwords, so the
collected lines are scrubbed before they are parsed or stored.
"""

from __future__ import annotations

import hashlib

from driftcheck.model import CollectSettings, ParseResult

from .base import Collector, scrub_prefixed

# Output, one header per file (path always last, so a tab in a name survives):
#   C<TAB>MODE USER:GROUP<TAB>PATH            a crontab; its lines follow, each prefixed "|"
#   B<TAB>MODE USER:GROUP<TAB>SHA256<TAB>PATH a crontab over the size limit: hash only
#   S<TAB>MODE USER:GROUP<TAB>SHA256<TAB>PATH a periodic job script
#   E<TAB>denied|failed<TAB>PATH             a file or directory that cannot be read
#   L<TAB>LIMIT<TAB>DIR                       DIR holds more files than LIMIT; rest skipped
_SHELL = """\
limit_files={limit_files}; limit_bytes={limit_bytes}; any=; seen=
meta() {{ stat -L -c '%a %U:%G' -- "$1"; }}
unreadable() {{
  if [ -r "$1" ]; then printf 'E\\tfailed\\t%s\\n' "$1"; else printf 'E\\tdenied\\t%s\\n' "$1"; fi
}}
crontab_file() {{
  if [ ! -r "$1" ]; then unreadable "$1"; return; fi
  m=$(meta "$1") && size=$(wc -c < "$1") || {{ unreadable "$1"; return; }}
  if [ "$size" -gt "$limit_bytes" ]; then
    sum=$(sha256sum < "$1") || {{ unreadable "$1"; return; }}
    printf 'B\\t%s\\t%s\\t%s\\n' "$m" "${{sum%% *}}" "$1"
    return
  fi
  printf 'C\\t%s\\t%s\\n' "$m" "$1"
  # awk, not sed: it ends the last line with a newline even when the file does not,
  # so the next header always starts a line of its own.
  awk '{{ print "|" $0 }}' "$1" || unreadable "$1"
}}
script_file() {{
  if [ ! -r "$1" ]; then unreadable "$1"; return; fi
  m=$(meta "$1") && sum=$(sha256sum < "$1") || {{ unreadable "$1"; return; }}
  printf 'S\\t%s\\t%s\\t%s\\n' "$m" "${{sum%% *}}" "$1"
}}
scan_dir() {{
  [ -d "$2" ] || return 0
  any=1
  if [ ! -r "$2" ] || [ ! -x "$2" ]; then printf 'E\\tdenied\\t%s\\n' "$2"; return 0; fi
  real=$(cd -P -- "$2" && pwd -P) || real=$2
  case " $seen " in *" $real "*) return 0 ;; esac
  seen="$seen $real"
  n=0
  for f in "$2"/*; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    if [ "$n" -gt "$limit_files" ]; then printf 'L\\t%s\\t%s\\n' "$limit_files" "$2"; break; fi
    "$1" "$f"
  done
}}
for p in /etc/crontab /etc/anacrontab; do
  if [ -e "$p" ]; then any=1; crontab_file "$p"; fi
done
for d in /etc/cron.d /etc/crontabs /var/spool/cron/crontabs /var/spool/cron; do
  scan_dir crontab_file "$d"
done
for d in /etc/cron.hourly /etc/cron.daily /etc/cron.weekly /etc/cron.monthly /etc/cron.yearly \\
    /etc/periodic/*; do
  scan_dir script_file "$d"
done
if [ -z "$any" ]; then
  echo 'no cron configuration: no /etc/crontab, cron.d, spool or periodic directory' >&2
  exit 193
fi
exit 0
"""


def shell(settings: CollectSettings) -> str:
    """The section's shell, bounded by the inventory's file count and size limits."""
    return _SHELL.format(
        limit_files=int(settings.dir_max_files), limit_bytes=int(settings.file_max_bytes)
    )


def _mode(text: str) -> str:
    return text.rjust(4, "0") if text.isdigit() else text


def _meta(field: str) -> dict[str, object] | None:
    """``"644 root:root"`` -> {mode, owner}; None when the field is not that."""
    parts = field.split(" ")
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return {"mode": _mode(parts[0]), "owner": parts[1]}


def _entries(lines: list[str]) -> list[str]:
    """The lines cron acts on: not blank, not a comment; outer whitespace dropped."""
    out = []
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            out.append(text)
    return out


_ERRORS = {
    "denied": "permission denied: cannot be read by the collecting user (run as root)",
    "failed": "could not be read (it changed or vanished while being read)",
}


def parse(raw: str) -> ParseResult:
    """Facts per crontab file, per crontab line and per job script.

    - ``/etc/cron.d/backup`` -> ``{"mode": "0644", "owner": "root:root", "entries": 2,
      "entries_sha256": ...}``: the hash covers the effective lines in order;
    - ``/etc/cron.d/backup: 0 2 * * * root /usr/local/bin/backup`` -> ``1`` (how
      often that line occurs in the file);
    - ``/etc/cron.daily/dpkg`` -> ``{"mode": "0755", "owner": "root:root", "sha256": ...}``;
    - a crontab over the size limit -> ``{"mode", "owner", "sha256", "note"}`` without lines.

    Unreadable files and directories, and directories with too many files, become errors.
    """
    facts: dict[str, object] = {}
    errors: dict[str, str] = {}
    current: tuple[str, dict[str, object]] | None = None
    lines: list[str] = []

    def finish() -> None:
        if current is None:
            return
        path, fact = current
        entries = _entries(lines)
        text = "".join(e + "\n" for e in entries)
        fact["entries"] = len(entries)
        fact["entries_sha256"] = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
        facts[path] = fact
        for entry in entries:
            key = f"{path}: {entry}"
            count = facts.get(key, 0)
            facts[key] = (count if isinstance(count, int) else 0) + 1

    for line in raw.split("\n"):
        if line.startswith("|"):
            if current is not None:
                lines.append(line[1:])
            continue
        kind, _, rest = line.partition("\t")
        if kind not in ("C", "B", "S", "E", "L"):
            continue  # garbage, or a blank line; content lines all start with "|"
        finish()
        current, lines = None, []
        fields = rest.split("\t")
        if kind == "C" and len(fields) >= 2 and (meta := _meta(fields[0])):
            current = ("\t".join(fields[1:]), meta)
        elif kind in ("B", "S") and len(fields) >= 3 and (meta := _meta(fields[0])):
            meta["sha256"] = fields[1]
            if kind == "B":
                meta["note"] = "over the size limit (collect.file_max_bytes): lines not compared"
            facts["\t".join(fields[2:])] = meta
        elif kind == "E" and len(fields) >= 2 and fields[0] in _ERRORS:
            errors["\t".join(fields[1:])] = _ERRORS[fields[0]]
        elif kind == "L" and len(fields) >= 2 and fields[0].isdigit():
            errors["\t".join(fields[1:])] = (
                f"more than {fields[0]} files: only the first {fields[0]} were read "
                "(collect.dir_max_files)"
            )
    finish()
    return ParseResult(dict(sorted(facts.items())), errors)


COLLECTOR = Collector(
    name="cron",
    description="crontabs (/etc/crontab, cron.d, anacrontab, user spools) line by line, "
    "secrets redacted; cron.{hourly,daily,weekly,monthly} and /etc/periodic scripts by sha256",
    shell=shell,
    parse=parse,
    timeout=lambda s: 30.0 + 0.2 * s.dir_max_files,
    # Crontab lines are prefixed "|", our own headers are not: only the lines are
    # scrubbed, by the Redactor, which reads command lines (PGPASSWORD=x, -p x, curl -u).
    scrub=scrub_prefixed,
)
