"""Fuzzing: no config-format parser, no collector parser path and no section splitter
lets an exception escape, on real configuration files mangled at random.

Seeds are real files: the config files of the /etc of debootstrapped bullseye,
bookworm and trixie trees, kept in tests/seeds/etc/ (see its SOURCE.md), plus this
machine's own /etc, so the fuzzer starts from what hosts really hold. Hypothesis
then inserts, deletes and swaps characters chosen from the ones that matter to
these formats.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftcheck.collectors import config_formats as cf
from driftcheck.script import split_output
from tests.support.paths import ETC_SEEDS, FIXTURES

#: The characters these formats give meaning to, and some that break decoders.
HOSTILE = "[]{}=:;#\"'\\\n\t -|>*&!%@`$,.\x00\ufeff\u2028é"
MAX_SEED_BYTES = 16 * 1024


def _etc_roots() -> list[Path]:
    return [*sorted(p for p in ETC_SEEDS.iterdir() if p.is_dir()), Path("/etc")]


def _seeds(per_root: int = 150) -> list[tuple[str, str]]:
    """(path as on the host, text) of real config files that one of our formats claims."""
    seeds: list[tuple[str, str]] = []
    for root in _etc_roots():
        found = 0
        for dirpath, _dirs, files in sorted(os.walk(root)):
            for name in sorted(files):
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                host_path = "/etc/" + str(path.relative_to(root))
                try:
                    if path.stat().st_size > MAX_SEED_BYTES:
                        continue
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                if cf.detect(host_path, text) is not None:
                    seeds.append((host_path, text))
                    found += 1
            if found >= per_root:
                break
    return seeds


SEEDS = _seeds()
PARSERS: dict[str, Callable[[str], cf.Settings | None]] = {
    "ini": cf.parse_ini,
    "yaml": cf.parse_yaml,
    "json": cf.parse_json,
    "toml": cf.parse_toml,
    "env": cf.parse_env,
    "ssh": cf.parse_ssh,
    "sysctl": cf.parse_sysctl_conf,
    "nginx": cf.parse_nginx,
    "keyvalue": cf.parse_keyvalue,
}


@st.composite
def mangled(draw: st.DrawFn) -> tuple[str, str]:
    """A real config file with a few random edits."""
    path, text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.text(alphabet=HOSTILE, min_size=1, max_size=4))
        if kind == "insert":
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + len(piece) :]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    return path, text


FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples in every run: CI never flakes on a new one
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_there_are_real_seeds_of_every_common_format() -> None:
    formats = {fmt for path, text in SEEDS if (found := cf.detect(path, text)) for fmt in found[:1]}
    assert {"ini", "env", "ssh", "keyvalue"} <= formats, formats
    assert len(SEEDS) >= 150


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@FUZZ
@given(case=mangled())
def test_no_format_parser_raises(fmt: str, case: tuple[str, str]) -> None:
    try:
        parsed = PARSERS[fmt](case[1])
    except cf._TooManyError:
        return  # the documented way out for a file with too many settings
    assert parsed is None or isinstance(parsed, dict)


@FUZZ
@given(case=mangled())
def test_settings_always_answers(case: tuple[str, str]) -> None:
    found = cf.settings(*case)
    assert found is None or isinstance(found, tuple | cf.Unparsed)


MARKER = "DRIFTCHECK-" + "0" * 32
FRAMED = (FIXTURES / "sysctl").glob("*/output.txt")


@FUZZ
@given(
    body=st.text(alphabet=HOSTILE + "BEGINDENDRIFTCHECK-0 abc", max_size=400),
    names=st.lists(st.sampled_from(["os", "sysctl", "files", "x y"]), max_size=4),
)
def test_the_splitter_never_raises(body: str, names: list[str]) -> None:
    framed = f"{MARKER} BEGIN os\n{body}\n{MARKER} END os 0\n{MARKER} BEGIN files\n{body}"
    out = split_output(framed.encode(), body.encode("utf-8", "replace"), MARKER, names)
    assert set(out) == set(names)
