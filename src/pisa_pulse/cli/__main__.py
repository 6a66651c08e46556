"""`python -m pisa_pulse.cli` = `pulse`."""

import sys

from pisa_pulse.cli.main import main

sys.exit(main())
