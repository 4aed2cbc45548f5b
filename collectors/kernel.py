"""``kernel``: the kernel command line and the loaded kernel modules.

The kernel release is the ``os`` collector's ``kernel_release``; it is not
repeated here.

Command line: one fact per parameter, ``cmdline.<name>``, split the way the
kernel splits /proc/cmdline (kernel/params.c next_arg(): whitespace separates,
double quotes group, quotes around a value are dropped). One fact per parameter
rather than one string, so that a report names the parameter that differs
("cmdline.mitigations: auto -> off") and an added parameter is one "only in
staging" finding instead of a changed 300-character string. The value is the
text after the first "=", ``true`` for a bare flag ("quiet"), and a list in
command-line order when a parameter is given more than once ("console=tty0
console=ttyS0": the order decides /dev/console). Everything after a bare
``--`` is for init, not the kernel: ``cmdline_init_args``, one string.
BOOT_IMAGE and initrd (paths carrying the kernel version, which ``os``
reports), root, resume and rd.luks.uuid (per-install UUIDs) are volatile.

Modules: one fact per loaded module, ``module.<name>`` = "loaded", or
"loaded (OE)" with the module's taint flags (out-of-tree, unsigned,
proprietary...). Loaded on one side only is drift; sizes, reference counts,
users, load state and load addresses change by nature (addresses are even
hidden from unprivileged readers) and are left out. The list comes from
/proc/modules; a kernel built without module support (CONFIG_MODULES=n, like
Firecracker guest kernels) has no /proc/modules, and then /sys/module is read:
it lists built-in code too, but only a loadable module has an ``initstate``
file, so such a kernel truthfully yields no modules (and the lab can present
planted modules there). Neither present: the module list is an error
(incomplete), never "no modules".
"""

from __future__ import annotations

from collections import defaultdict

from driftcheck.model import ParseResult

from .base import Collector

# Output: "C|" + the command line; then "#modules /proc/modules" and "M|" + each
# line of it, or "#modules /sys/module" and "S|NAME<TAB>INITSTATE<TAB>TAINT"
# per loadable module, or "#modules none".
SHELL = """\
if [ ! -r /proc/cmdline ]; then
  echo 'no readable /proc/cmdline (not Linux, or /proc is not mounted)' >&2
  exit 193
fi
awk 'NR <= 64 { print "C|" $0 }' /proc/cmdline
if [ -r /proc/modules ]; then
  echo '#modules /proc/modules'
  awk 'NR <= 20000 { print "M|" $0 }' /proc/modules
elif [ -d /sys/module ]; then
  echo '#modules /sys/module'
  for _m in /sys/module/*; do
    [ -r "$_m/initstate" ] || continue  # built into the kernel, not a loaded module
    _state= _taint=
    read -r _state < "$_m/initstate" || :
    if [ -r "$_m/taint" ]; then read -r _taint < "$_m/taint" || :; fi
    printf 'S|%s\\t%s\\t%s\\n' "${_m##*/}" "$_state" "$_taint"
  done
else
  echo '#modules none'
fi
"""

#: Parameters whose values differ by nature between any two hosts.
VOLATILE = (
    "cmdline.BOOT_IMAGE",
    "cmdline.initrd",
    "cmdline.root",
    "cmdline.resume",
    "cmdline.rd.luks.uuid",
)

_MODULE_STATES = ("Live", "Loading", "Unloading")
_SPACE = " \t\n\v\f\r"


def split_cmdline(text: str) -> tuple[list[tuple[str, str | None]], str | None]:
    """(param, value or None) pairs as the kernel sees them, and init's arguments.

    Mirrors next_arg() in the kernel's kernel/params.c: a double quote toggles
    quoting anywhere in a word; a value starting with a quote loses it and the
    word's closing quote; a word starting with a quote loses that quote and the
    closing one. A bare ``--`` ends the kernel's parameters.
    """
    args: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            return args, None
        quoted = text[i] == '"'
        word_start = i + 1 if quoted else i
        in_quote = quoted
        j = word_start
        # As in the kernel, "=" as the very first character does not count.
        equals = 0
        while j < n and (in_quote or text[j] not in _SPACE):
            if equals == 0 and text[j] == "=":
                equals = j - word_start
            if text[j] == '"':
                in_quote = not in_quote
            j += 1
        word = text[word_start:j]
        i = j + 1
        if not equals:
            if quoted and word.endswith('"'):
                word = word[:-1]
            if word == "--":
                return args, text[i:].strip(_SPACE) if i < n else ""
            args.append((word, None))
            continue
        param, value = word[:equals], word[equals + 1 :]
        if value.startswith('"'):
            value = value[1:]
            if value.endswith('"'):
                value = value[:-1]
        elif quoted and value.endswith('"'):
            value = value[:-1]
        args.append((param, value))


def _module(line: str) -> tuple[str, str] | None:
    """(name, taint letters) of one /proc/modules line, None for anything else.

    ``name size refcount users, state address [(taints)]``; without module
    unloading the refcount and users are "-".
    """
    fields = line.split()
    if len(fields) < 6 or not fields[1].isdigit() or fields[4] not in _MODULE_STATES:
        return None
    taint = ""
    if len(fields) > 6 and fields[6].startswith("(") and fields[6].endswith(")"):
        # "+" and "-" in there mean "loading" and "unloading": a state, not a taint.
        taint = fields[6][1:-1].replace("+", "").replace("-", "")
    return fields[0], taint


def _value(taint: str) -> str:
    return f"loaded ({taint})" if taint else "loaded"


def parse(raw: str) -> ParseResult:
    """``cmdline.<param>`` and ``cmdline_init_args``; ``module.<name>`` per loaded module."""
    facts: dict[str, object] = {}
    errors: dict[str, str] = {}
    cmdline = " ".join(line[2:] for line in raw.split("\n") if line.startswith("C|"))
    params, init_args = split_cmdline(cmdline)
    values: dict[str, list[str | bool]] = defaultdict(list)
    for param, value in params:
        if param:
            values[param].append(True if value is None else value)
    for param, seen in values.items():
        facts[f"cmdline.{param}"] = seen[0] if len(seen) == 1 else seen
    if init_args:
        facts["cmdline_init_args"] = init_args
    modules: dict[str, str] = {}
    for line in raw.split("\n"):
        if line.startswith("M|"):
            found = _module(line[2:])
            if found:
                modules[found[0]] = _value(found[1])
        elif line.startswith("S|"):
            name, _, rest = line[2:].partition("\t")
            state, _, taint = rest.partition("\t")
            if name and state:
                modules[name] = _value(taint.strip())
        elif line == "#modules none":
            errors["modules"] = "neither /proc/modules nor /sys/module can be read"
    for name, value in modules.items():
        facts[f"module.{name}"] = value
    return ParseResult(dict(sorted(facts.items())), errors)


COLLECTOR = Collector(
    name="kernel",
    description="kernel command line parameters (/proc/cmdline) and loaded modules with their "
    "taint flags (/proc/modules, else /sys/module)",
    shell=SHELL,
    parse=parse,
    timeout=20.0,
    volatile=VOLATILE,
)
