"""``python -m worker`` is the same as the ``accu-ingest`` command."""

import sys

from worker.cli.main import main

sys.exit(main())
