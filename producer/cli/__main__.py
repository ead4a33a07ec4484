"""Allow ``python -m simfleet.producer.cli``."""

import sys

from simfleet.producer.cli import main

sys.exit(main())
