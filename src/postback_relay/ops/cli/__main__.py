"""`python -m postback_relay.ops.cli`, the console script without installing it."""

import sys

from postback_relay.ops.cli import main

sys.exit(main())
