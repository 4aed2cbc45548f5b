"""Allow ``python -m driftcheck``."""

from driftcheck.cli import main

main()
