"""Allow ``python -m simfleet.producer.cli``."""

from simfleet.producer.console import run

run()
