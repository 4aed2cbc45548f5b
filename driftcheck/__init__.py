"""driftcheck: find where staging no longer mirrors production, with evidence."""

__version__ = "0.1.0"
