"""Scrub secrets out of collected text before anything is parsed, stored or shown.

A secret value is replaced by a keyed hash (HMAC-SHA256 with a local key), so a
changed password still shows up as drift while the value itself never leaves the
host's process memory. The key is created on first use with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from driftcheck.errors import DriftcheckError

KEY_FILE_ENV = "DRIFTCHECK_KEY_FILE"

#: What a redacted value looks like; recognised so that scrubbing is idempotent
#: (re-scrubbing stored output must not hash the hash).
REDACTED = re.compile(r"<redacted:[0-9a-f]{16}>")

# A setting name is split into words (snake, kebab, dotted and camelCase); a name
# is secret when one of its words looks like one of these.
_SECRET_WORD = re.compile(
    r"^(?:.*pass(?:word|wd|phrase)?s?|pwd|.*secrets?|.*tokens?|credentials?|creds?|.*key"
    r"|privkey|.*apikey|auth|authtok|salt|bindpw|rootpw|.*pw|masterauth|psk|community)$",
    re.IGNORECASE,
)
# Words that contain a secret word but name something public.
_PUBLIC_WORD = re.compile(
    r"^(?:pub.*|public.*|bypass|sshpass|keyring|keys?(?:ize|ring|map)s?)$", re.I
)
# Values that cannot be a secret; keeping them readable keeps reports useful
# (sshd's "PubkeyAuthentication yes" or "PasswordAuthentication no").
_HARMLESS_VALUE = re.compile(
    r"^[\"']?(?:yes|no|true|false|on|off|none|null|0|1|)[\"']?$"
    # An absolute file path names where a key lives (ssl_certificate_key, HostKey).
    r"|^[\"']?/[\w./-]*[\"']?$",
    re.I,
)
# Directives that pass requests on, and words naming a realm, not a secret:
# nginx proxy_pass/fastcgi_pass, auth_basic "Restricted"; "no" negates a flag
# (--no-password).
_PUBLIC_FIRST_WORD = frozenset({"proxy", "fastcgi", "uwsgi", "scgi", "grpc", "memcached", "no"})
# A last word like these makes the setting *about* a secret (where it lives, how
# long it is), not the secret itself: "password_min_length", "token_ttl", "key_file".
_ABOUT_A_SECRET = frozenset(
    {
        "path",
        "file",
        "dir",
        "directory",
        "filename",
        "location",
        "length",
        "len",
        "size",
        "min",
        "max",
        "age",
        "days",
        "expiry",
        "expires",
        "timeout",
        "ttl",
        "type",
        "algorithm",
        "algorithms",
        "method",
        "interval",
        "tries",
        "attempts",
        "encryption",
        "basic",
        "realm",
        "enabled",
        "cipher",
        "format",
        "policy",
        "stdin",
    }
)
_WORD_SPLIT = re.compile(r"[._\-\s]+|(?<=[a-z0-9])(?=[A-Z])")

# Credentials in a well-known format are found by their shape alone, whatever the
# setting is called, or with no setting at all (a key pasted into a comment, a
# runbook, a log line). Each entry is (keywords, pattern): every match contains one
# of the keywords (compared in lower case), for the prefilter below. A group named
# "s<n>" marks the secret part when the rest stays readable (a webhook's host).
# Shapes as the providers document them: tests/fixtures/secrets/SOURCE.md.
_TOKEN_FORMATS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("akia", "asia", "abia", "acca", "a3t"), r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}"),
    # An AWS secret access key is 40 characters of base64 with no shape of its own: only
    # beside its name, also without "=" ("aws configure set aws_secret_access_key V").
    (
        ("secret_access_key", "secretaccesskey"),
        r"(?i:(?:aws_?)?secret_?access_?key)[\"']?[\s:=]+[\"']?(?P<s1>[A-Za-z0-9/+]{40})",
    ),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"gh[pousr]_[A-Za-z0-9]{36}"),  # GitHub
    (("github_pat_",), r"github_pat_\w{82}"),
    (
        ("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glsoat-"),
        r"gl(?:pat|dt|rt|ptt|cbt|soat)-[\w-]{20,}",
    ),
    (("xox", "xapp-"), r"xox[abeoprs]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}"),  # Slack
    (("hooks.slack",), r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s2>[\w/+-]+)"),
    (("discord",), r"discord(?:app)?\.com/api/webhooks/(?P<s3>\d+/[\w-]+)"),
    (
        ("k_live_", "k_test_", "k_prod_", "whsec_"),
        r"[sr]k_(?:live|test|prod)_[A-Za-z0-9]{10,99}|whsec_\w{24,}",
    ),
    (("aiza", "gocspx-", "ya29."), r"AIza[\w-]{35}|GOCSPX-[\w-]{28}|ya29\.[\w-]{20,}"),  # Google
    (("npm_",), r"npm_[A-Za-z0-9]{36}"),
    (("pypi-",), r"pypi-AgEIcHlwaS5vcmc[\w-]{50,}"),
    (("sg.",), r"SG\.[\w-]{22}\.[\w-]{43}"),  # SendGrid
    (("hvs.", "hvb."), r"hv[sb]\.[\w-]{24,}"),  # HashiCorp Vault
    (("_v1_",), r"do[opr]_v1_[a-f0-9]{64}"),  # DigitalOcean
    (("sk-",), r"sk-(?:proj|svcacct|admin)-[\w-]{40,}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"),
    (("sk-ant-",), r"sk-ant-(?:api|admin)\d\d-[\w-]{80,}"),  # Anthropic
    (("hf_",), r"hf_[A-Za-z]{34}"),  # Hugging Face
    (("shpat_", "shpca_", "shppa_", "shpss_"), r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),  # Shopify
    (("dckr_pat_",), r"dckr_pat_[\w-]{27}"),  # Docker Hub
    (("age-secret-key-1",), r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),  # age identity
    (
        ("glsa_", "glc_"),
        r"glsa_[A-Za-z0-9]{32}_[a-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2}",
    ),  # Grafana
    (("tskey-",), r"tskey-(?:auth|api|client|scim|webhook)-[\w-]{10,}"),  # Tailscale
    (("pmak-",), r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),  # Postman
    (("lin_api_",), r"lin_api_[A-Za-z0-9]{40}"),  # Linear
    (("nrak-",), r"NRAK-[A-Z0-9]{27}"),  # New Relic
    (("atatt3",), r"ATATT3[\w=-]{180,}"),  # Atlassian
    # A JWT (JWS, or JWE with five parts): base64url of '{"' is "eyJ".
    (("eyj",), r"eyJ[\w-]{10,}\.[\w-]*\.[\w-]*(?:\.[\w-]*\.[\w-]*)?"),
    # Password hashes can be cracked offline, so they are as secret as the password:
    # crypt(3) MD5/SHA/bcrypt/yescrypt/scrypt, Apache's apr1, argon2, LDAP and
    # htpasswd {SCHEME}, GRUB's password_pbkdf2.
    (
        ("$1$", "$2", "$5$", "$6$", "$7$", "$y$", "$gy$", "$apr1$", "$argon2"),
        r"\$(?:1|5|6|apr1)\$(?:rounds=\d+\$)?[./\w]{1,16}\$[./\w]{20,}"
        r"|\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}|\$(?:y|gy)\$[./\w]+\$[./\w]+\$[./\w]{20,}"
        r"|\$7\$[./\w]+\$[./\w]{20,}|\$argon2(?:id|i|d)\$v=\d+\$[\w=,]+\$[\w+/]+\$[\w+/]{16,}",
    ),
    (
        ("{sha", "{ssha", "{md5", "{smd5", "{crypt", "{pbkdf2", "{argon2"),
        r"\{(?:S?SHA\d*|S?MD5|CRYPT|PBKDF2[\w-]*|ARGON2)\}[^\s\"',;]{8,}",
    ),
    (("grub.pbkdf2",), r"grub\.pbkdf2\.sha\d+\.\d+\.[0-9A-Fa-f]+\.[0-9A-Fa-f]+"),
)
_KNOWN_TOKEN = re.compile(
    r"(?<![\w-])(?:" + "|".join(pattern for _, pattern in _TOKEN_FORMATS) + r")(?![\w-])"
)

_ASSIGNMENT = re.compile(
    r"^(?P<pre>\s*(?:export\s+)?[\"']?)(?P<name>[A-Za-z_][\w.\-]*)(?P<q>[\"']?)"
    r"(?P<sep>\s*[:=]\s*|\s+)(?P<value>.*?)(?P<post>\s*[;,]?\s*)$"
)
# "Tokens expire after one hour." starts like "token value" but reads as a sentence:
# several words ending in a full stop are prose, not a setting.
_SENTENCE = re.compile(r"^\S+(?:\s+\S+){2,}[.!?]$")
# A PAM rule (pam.conf(5)): "auth required pam_unix.so nullok". Its type and control
# fields are keywords, not secrets; only the module's key=value arguments can hold one.
_PAM_RULE = re.compile(
    r"^\s*-?(?:auth|account|password|session)\s+"
    r"(?:\[[^\]]*\]|required|requisite|sufficient|optional|include|substack)\s+\S+"
)
_URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][\w+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)")
_XML_SECRET = re.compile(
    r"(?P<open><(?P<tag>[\w.\-]*(?:pass|secret|token|key|credential)[\w.\-]*)>)"
    r"(?P<value>[^<]*)(?P<close></(?P=tag)>)",
    re.IGNORECASE,
)
# key=value pairs anywhere in a line: connection strings (Server=x;Password=y),
# libpq (host=db password=y), query strings (?token=y), XML attributes
# (password="y"), PHP ($db_password = 'y'), JSON on one line, --password=y.
_INLINE = re.compile(
    r"(?P<name>[A-Za-z_$][\w.\-]*)(?P<sep>[\"']?\s*(?:=>|=|:)\s*)"
    # Unquoted, a value stops at brackets: "{user: u, password: y}" is a YAML flow map.
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s;,&\"'<>(){}\[\]]+)"
)
# sudoers(5) tags are followed by ":" like a pair, but "NOPASSWD: ALL" names no secret.
_SUDOERS_TAG = re.compile(r"(?:NO)?PASSWD")
# XML/.config pairs: <add key="DbPassword" value="y"/>, define('DB_PASSWORD', 'y').
_LABELLED = re.compile(
    r"(?P<head>(?:key|name)\s*=\s*\"(?P<label>[^\"]*)\"\s+value\s*=\s*\")(?P<value>[^\"]*)"
    r"|(?P<dhead>define\(\s*['\"](?P<dlabel>[^'\"]+)['\"]\s*,\s*(?P<q>['\"]))(?P<dvalue>.*?)(?=(?P=q))",
    re.IGNORECASE,
)
# HTTP headers whose value is a credential although their name says nothing secret.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# A credential header written "Name: value" (raw HTTP, curl -H, YAML/JSON maps). After an
# auth scheme only the credential is redacted, so "Bearer" or "Basic" stays readable;
# without one, the value is everything up to the quote that ends it or the line's end
# (cookies are "a=1; b=2").
_CREDENTIAL_HEADER = re.compile(
    r"(?P<head>(?<![\w-])(?:proxy-)?authorization[\"']?\s*[:=]?\s*[\"']?\s*"
    r"(?:bearer|basic|token|digest|negotiate|ntlm|apikey)\s+)(?P<value>[^\s\"']+)"
    r"|(?P<nhead>(?<![\w-])(?:(?:proxy-)?authorization|(?:set-)?cookie)[\"']?\s*[:=]\s*)"
    r"(?P<nvalue>\"[^\"]*\"|'[^']*'|[^\"'\s][^\"']*?)(?=\s*(?:[\"',;]\s*)?$|[\"'])",
    re.IGNORECASE,
)
# Directives that set a named header, parameter or variable to a value: nginx
# (proxy_set_header, add_header, fastcgi_param, set $var), Apache (RequestHeader set,
# Header always set, SetEnv), HAProxy (http-request set-header). The name decides.
_NAMED_DIRECTIVE = re.compile(
    r"^(?P<head>\s*(?:(?:proxy|grpc)_set_header|add_header|add_trailer|(?:fastcgi|uwsgi|scgi)_param"
    r"|set|(?i:(?:request)?header)(?:\s+(?i:always|onsuccess))?\s+(?i:set|append|add|merge|setifempty)"
    r"|(?i:setenv)|http-(?:request|response)\s+(?:set|add)-header)"
    r"\s+[\"']?(?P<name>\$?[\w.-]+)[\"']?\s+)(?P<value>\"[^\"]*\"|'[^']*'|[^\s;\"']+)"
)
# libpq's .pgpass: hostname:port:database:username:password, with \: and \\ escapes.
_PGPASS_FIELD = r"(?:[^\s:\\]|\\.)+"
_PGPASS_HOST_PORT = rf"(?![#\s]){_PGPASS_FIELD}:(?:\d+|\*):"
_PGPASS = re.compile(
    rf"^(?P<head>{_PGPASS_HOST_PORT}{_PGPASS_FIELD}:{_PGPASS_FIELD}:)(?P<value>(?:[^:\\]|\\.)+)$"
)
# An option and its value as two words: --password x, -token x (the "=" form is an
# inline pair). The value is not an option itself.
_OPTION = re.compile(
    r"(?<![\w.-])--?(?P<name>[A-Za-z][\w.-]*)\s+"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s;&|'\"<>-][^\s;&|'\"<>]*)"
)
_ARG = r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s;&|'\"]+)"
# Tools whose password option is one letter, so the option's name cannot tell:
# (the command on the line, its password option). mysql takes -pSECRET attached
# only ("-p x" means "ask, then use database x").
_TOOL_PASSWORD_OPTIONS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (re.compile(r"\b(?:mysql|mariadb)\w*"), re.compile(r"(?<![\w.-])-p(?P<value>[^\s;&|'\"]+)")),
    (re.compile(r"\bsshpass\b"), re.compile(r"(?<![\w.-])-p\s*" + _ARG)),
    (
        re.compile(r"\b(?:docker|podman|buildah|skopeo|helm)\b.*\blogin\b"),
        re.compile(r"(?<![\w.-])-p\s+" + _ARG),
    ),
    (re.compile(r"\bredis-cli\b"), re.compile(r"(?<![\w.-])-a\s+" + _ARG)),
    (
        re.compile(r"\b(?:curl|wget)\b"),
        re.compile(
            r"(?<![\w.-])(?:-u\s*|--(?:proxy-)?user[=\s]\s*)['\"]?[^\s:'\"]+:(?P<value>[^\s'\"]+)"
        ),
    ),
)
# A password word in a statement about a user: a .netrc line (its tokens come in any
# order after "machine h", "default" or "login u"), HAProxy "user u password HASH" and
# "user u insecure-password p". At the start of the line only, since prose says "the
# user and password in the vault".
_USER_PASSWORD = re.compile(
    r"(?P<head>^\s*(?:machine\s+\S+|default|login\s+\S+|user\s+\S+)\s.*?"
    r"\b(?:insecure-)?password\s+)(?P<value>[^\s#]+)",
    re.IGNORECASE,
)
# Prose that gives a secret away: "the root password is X", "old password was X", in
# a comment or free text. An unquoted value must look like a credential, since
# "the password is required" is the commoner sentence.
_PROSE_SECRET = re.compile(
    r"(?P<head>\b(?P<name>[A-Za-z][\w-]*)\s+(?:is|was)(?:\s+(?:now|still))?\s+)"
    r"(?P<value>\"[^\"]+\"|'[^']+'|[^\s\"']+?)(?=[.,;:!?)]*(?:\s|$))"
)
_NOT_A_PLAIN_WORD = re.compile(r"[^A-Za-z]|.[A-Z]")

_PEM_BEGIN = re.compile(r"-{4,5} ?BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}")
_PEM_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}")
# A whole key on one line: a JSON, TOML or YAML quoted string with "\n" escapes.
_PEM_ON_ONE_LINE = re.compile(
    f"(?P<begin>{_PEM_BEGIN.pattern})(?P<body>.*?)(?P<end>{_PEM_END.pattern})"
)
_YAML_BLOCK = re.compile(r"^(?P<indent>\s*)(?P<name>[\w.\-]+)\s*:\s*[|>][-+0-9]*\s*(#.*)?$")
# A Kubernetes env entry (and any YAML list of name/value maps): the name says whether
# the value on the next line is a secret.
_YAML_NAME_ITEM = re.compile(r"^(?P<indent>\s*)- name:\s*[\"']?(?P<label>[\w.-]+)[\"']?\s*$")
_YAML_VALUE_KEY = re.compile(r"^(?P<head>\s*value:\s*)(?P<value>.*?)(?P<post>\s*)$")


# Every line that any rule above could change contains one of these words (in lower
# case: a case-insensitive regex is many times slower); lines without them (most of
# sysctl -a or a config file) skip the expensive rules.
_CANDIDATE_WORDS = (
    *("pass", "pwd", "pw", "secret", "token", "cred", "key", "auth", "salt", "psk"),
    *("community", "cookie", "://", "mysql", "mariadb", "login", "redis-cli", "curl", "wget"),
    *(keyword for keywords, _ in _TOKEN_FORMATS for keyword in keywords),
)


def _prefix_tree(words: list[str]) -> str:
    """A regex matching any of ``words``, nested by common prefix (``a(?:uth|kia)``).

    The regex engine tries a flat alternation's branches one by one at every
    position; nested, one character comparison rules out all words but a few. The
    line prefilter is three times faster so. A word with a shorter word as its prefix
    is left out: a prefilter only needs the shorter one.
    """
    branches: dict[str, list[str]] = {}
    for word in words:
        branches.setdefault(word[0], []).append(word[1:])
    alternatives = []
    for first, rests in sorted(branches.items()):
        ends_here = "" in rests
        alternatives.append(re.escape(first) + ("" if ends_here else _prefix_tree(rests)))
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"


_CANDIDATE = re.compile(_prefix_tree(sorted({word.lower() for word in _CANDIDATE_WORDS})))
# A .pgpass line names nothing: its shape is its keyword. (Kept out of _CANDIDATE,
# whose literal alternatives alone let the regex engine skip ahead fast.)
_PGPASS_START = re.compile(_PGPASS_HOST_PORT)


def _may_hold_secret(line: str) -> bool:
    return _CANDIDATE.search(line.lower()) is not None or _PGPASS_START.match(line) is not None


def is_harmless_value(value: str) -> bool:
    """True for a value that cannot be a secret even under a secret name (yes, no,
    a flag, an absolute path such as where a key file lives)."""
    return bool(_HARMLESS_VALUE.match(value))


def is_secret_name(name: str) -> bool:
    """True when a setting called ``name`` probably holds a secret."""
    words = [w for w in _WORD_SPLIT.split(name) if w]
    if not words or words[-1].lower() in _ABOUT_A_SECRET:
        return False
    if words[0].lower() in _PUBLIC_FIRST_WORD:
        return False
    if any(_PUBLIC_WORD.match(w) for w in words):
        return False
    return any(_SECRET_WORD.match(w) for w in words)


class Redactor:
    """Replaces secret values with ``<redacted:HMAC>`` tokens."""

    def __init__(self, key: bytes) -> None:
        """Use ``key`` (at least 16 random bytes) for the keyed hash."""
        if len(key) < 16:
            raise ValueError("the redaction key must be at least 16 bytes")
        self._key = key

    @classmethod
    def from_key_file(cls, path: Path | None = None) -> Redactor:
        """Load the local key, creating it (mode 0600) when it does not exist yet."""
        path = path or default_key_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                key = path.read_bytes()
            else:
                key = secrets.token_bytes(32)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
        except OSError as exc:
            raise DriftcheckError(
                f"{path}: cannot read or create the redaction key ({exc.strerror}); "
                f"set {KEY_FILE_ENV} to a writable path"
            ) from None
        if len(key) < 16:
            raise DriftcheckError(
                f"{path}: the redaction key is too short; delete the file to create a new one"
            )
        return cls(key)

    def token(self, value: str) -> str:
        """The stable replacement for ``value``."""
        digest = hmac.new(self._key, value.encode("utf-8", "surrogateescape"), hashlib.sha256)
        return f"<redacted:{digest.hexdigest()[:16]}>"

    def _value(self, value: str) -> str:
        # A value that holds a token already was scrubbed by an earlier rule (or an
        # earlier run): hashing it again would only hash the hash.
        if REDACTED.search(value) or is_harmless_value(value):
            return value
        # Keep quotes so that a scrubbed JSON/YAML/INI file still parses.
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            return value[0] + self.token(value[1:-1]) + value[0]
        return self.token(value)

    def _block(self, body: str, pad: str) -> str:
        """The line standing for a secret that spanned lines (unless it is one already)."""
        return body if REDACTED.fullmatch(body.strip()) else pad + self.token(body)

    def scrub_line(self, line: str) -> str:
        """Redact every secret this module knows how to find in one line."""
        if not _may_hold_secret(line):
            return line  # the common case, decided by one cheap search
        return self._scrub_candidate(line)

    def _scrub_candidate(self, line: str) -> str:
        """:meth:`scrub_line` for a line the prefilter let through."""
        pam = _PAM_RULE.match(line)
        if pam:  # only the module's arguments can hold a secret
            return pam[0] + self._scrub_pairs(self._scrub_shapes(line[pam.end() :]))
        line = self._scrub_named(self._scrub_shapes(line))
        m = _ASSIGNMENT.match(line)
        if (
            m
            and m["value"]
            and is_secret_name(m["name"])
            and (m["sep"].strip() or not _SENTENCE.match(m["value"]))
        ):
            value = self._secret_value(m["value"])
            line = m["pre"] + m["name"] + m["q"] + m["sep"] + value + m["post"]
        return self._scrub_pairs(line)

    def _secret_value(self, value: str) -> str:
        """The value of a secret setting, redacted; a flow map keeps its shape.

        Everything in ``auth = { user = "u", pass = "p" }`` (a TOML inline table, a YAML
        flow map) is redacted, but value by value, so that the file still parses.
        """
        if not (value.startswith("{") and value.endswith("}")):
            return self._value(value)
        inner = _INLINE.sub(lambda p: p["name"] + p["sep"] + self._value(p["value"]), value[1:-1])
        return "{" + inner + "}"

    def _scrub_shapes(self, line: str) -> str:
        """Secrets found by their shape or their line's shape, whatever they are called."""
        line = _PEM_ON_ONE_LINE.sub(lambda m: m["begin"] + self._value(m["body"]) + m["end"], line)
        line = _KNOWN_TOKEN.sub(self._known_token, line)
        line = _URL_CREDENTIALS.sub(lambda m: m["head"] + self._value(m["pw"]), line)
        return _PGPASS.sub(lambda m: m["head"] + self._value(m["value"]), line)

    def _known_token(self, m: re.Match[str]) -> str:
        start, end = m.span()
        for name, part in m.groupdict().items():
            if part is not None:  # a format whose context stays readable
                start, end = m.span(name)
        return (
            m.string[m.start() : start] + self.token(m.string[start:end]) + m.string[end : m.end()]
        )

    def _scrub_named(self, line: str) -> str:
        """Secrets a name, header or directive in the line announces."""
        line = _XML_SECRET.sub(lambda m: m["open"] + self._value(m["value"]) + m["close"], line)
        line = _CREDENTIAL_HEADER.sub(self._credential_header, line)
        line = _NAMED_DIRECTIVE.sub(self._named_directive, line)
        return _LABELLED.sub(self._labelled, line)

    def _credential_header(self, m: re.Match[str]) -> str:
        if m["head"] is not None:
            return m["head"] + self._value(m["value"])
        return m["nhead"] + self._value(m["nvalue"])

    def _named_directive(self, m: re.Match[str]) -> str:
        name = m["name"].lstrip("$")
        if is_secret_name(name) or name.lower() in _CREDENTIAL_HEADERS:
            return m["head"] + self._value(m["value"])
        return m[0]

    def _labelled(self, m: re.Match[str]) -> str:
        if m["head"] is not None:
            label, head, value = m["label"], m["head"], m["value"]
        else:
            label, head, value = m["dlabel"], m["dhead"], m["dvalue"]
        return head + (self._value(value) if is_secret_name(label) else value)

    def _scrub_pairs(self, line: str) -> str:
        """Secrets in name/value pairs anywhere in the line: key=value, options, prose."""
        line = _INLINE.sub(self._inline, line)
        line = _OPTION.sub(self._named_value, line)
        for command, option in _TOOL_PASSWORD_OPTIONS:
            if command.search(line):
                line = option.sub(self._option_value, line)
        line = _USER_PASSWORD.sub(lambda m: m["head"] + self._value(m["value"]), line)
        return _PROSE_SECRET.sub(self._prose, line)

    def _inline(self, m: re.Match[str]) -> str:
        name, value = m["name"], m["value"]
        if (
            _SUDOERS_TAG.fullmatch(name)
            and m["sep"].strip() == ":"
            and "=" in m.string[: m.start()]
        ):
            return m[0]  # "deploy ALL=(ALL) NOPASSWD: ALL"
        if is_secret_name(name.lstrip("$")):
            return name + m["sep"] + self._value(value)
        if len(value) > 2 and value[0] in "\"'":
            # A quoted value can hold pairs of its own: "host=db password=y".
            value = value[0] + _INLINE.sub(self._inline, value[1:-1]) + value[-1]
        return name + m["sep"] + value

    def _named_value(self, m: re.Match[str]) -> str:
        if not is_secret_name(m["name"]):
            return m[0]
        return self._option_value(m)

    def _option_value(self, m: re.Match[str]) -> str:
        start, end = m.span("value")
        return m.string[m.start() : start] + self._value(m["value"]) + m.string[end : m.end()]

    def _prose(self, m: re.Match[str]) -> str:
        value = m["value"]
        quoted = value[0] in "\"'"
        if is_secret_name(m["name"]) and (quoted or _NOT_A_PLAIN_WORD.search(value)):
            return m["head"] + self._value(value)
        return m[0]

    def scrub_lines(self, lines: list[str]) -> list[str]:
        """Scrub a block of consecutive lines (one file's content, one command's output).

        Besides :meth:`scrub_line` on every line, this sees what spans lines: a PEM
        private key block, a YAML block scalar (``password: |``) whose value is on the
        indented lines that follow, and a YAML ``- name: X`` item whose ``value:`` is on
        the next line.
        """
        out: list[str] = []
        i = 0
        while i < len(lines):
            if not _may_hold_secret(lines[i]):  # every rule below needs a candidate line
                out.append(lines[i])
                i += 1
                continue
            found = (
                self._pem_block(lines, i)
                or self._yaml_block(lines, i)
                or self._name_value_item(lines, i)
            )
            if found is None:
                out.append(self._scrub_candidate(lines[i]))
                i += 1
            else:
                scrubbed, i = found
                out += scrubbed
        return out

    def _pem_block(self, lines: list[str], i: int) -> tuple[list[str], int] | None:
        """A private key from its BEGIN line on: the key lines become one token line.

        The text before BEGIN and from END on stays (a YAML or TOML string can start and
        end there); what lies between, on those lines too, is key material.
        """
        begin = _PEM_BEGIN.search(lines[i])
        if begin is None or _PEM_END.search(lines[i], begin.end()):
            return None  # no key, or a whole key on one line (scrub_line's)
        head, rest = lines[i][: begin.end()], lines[i][begin.end() :]
        body = [rest] if rest else []
        for j in range(i + 1, len(lines)):
            marker = _PEM_END.search(lines[j])
            if marker is None:
                body.append(lines[j])
                continue
            last, indent = lines[j], _indent(lines[j])
            if last[len(indent) : marker.start()]:
                body.append(last[len(indent) : marker.start()])
            pad = _indent(lines[i + 1]) if j > i + 1 else indent
            return [head, self._block("\n".join(body), pad), indent + last[marker.start() :]], j + 1
        # No END line: everything after BEGIN is key material.
        return [head, self._block("\n".join(body), "")], len(lines)

    def _yaml_block(self, lines: list[str], i: int) -> tuple[list[str], int] | None:
        """``password: |`` and the more indented lines after it, as one token line."""
        block = _YAML_BLOCK.match(lines[i])
        if not block or not is_secret_name(block["name"]):
            return None
        indent = len(block["indent"])
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or len(_indent(lines[j])) > indent):
            j += 1
        body = lines[i + 1 : j]
        pad = " " * (indent + 2)
        return [lines[i]] + ([self._block("\n".join(body), pad)] if body else []), j

    def _name_value_item(self, lines: list[str], i: int) -> tuple[list[str], int] | None:
        """``- name: DB_PASSWORD`` then ``  value: x``: the value of a secret name."""
        item = _YAML_NAME_ITEM.match(lines[i])
        if not item or i + 1 == len(lines) or not is_secret_name(item["label"]):
            return None
        value = _YAML_VALUE_KEY.match(lines[i + 1])
        if not value or len(_indent(value["head"])) != len(item["indent"]) + 2:
            return None
        return [lines[i], value["head"] + self._value(value["value"]) + value["post"]], i + 2

    def scrub_text(self, text: str) -> str:
        """Scrub a whole text, keeping its final newline."""
        if not text:
            return text
        scrubbed = "\n".join(self.scrub_lines(text.split("\n")))
        return scrubbed


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def default_key_path() -> Path:
    """``$DRIFTCHECK_KEY_FILE``, else ``$XDG_CONFIG_HOME/driftcheck/hmac.key``."""
    env = os.environ.get(KEY_FILE_ENV)
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "driftcheck" / "hmac.key"
