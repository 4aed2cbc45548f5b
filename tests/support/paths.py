"""Where the test suite's data lives, for tests in any folder below tests/."""

from __future__ import annotations

from pathlib import Path

#: tests/
TESTS = Path(__file__).resolve().parents[1]
#: the repository's root
REPO = TESTS.parent
#: captured real output per collector (tests/fixtures/<collector>/<case>/)
FIXTURES = TESTS / "fixtures"
#: Inventories that are not collector output: Ansible inventories, ssh_config folders.
INVENTORIES = TESTS / "inventories"
#: the golden report files
GOLDEN = TESTS / "golden"
#: real /etc files of three Debian releases, the fuzzer's seeds
ETC_SEEDS = TESTS / "seeds" / "etc"
