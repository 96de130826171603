"""``python -m spawner.hubservice``: the lockstep service, as the hub starts it."""

import sys

from spawner.hubservice.app import main

sys.exit(main())
