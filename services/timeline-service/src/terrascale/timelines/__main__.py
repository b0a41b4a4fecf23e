import sys

from terrascale.timelines.cli import main

sys.exit(main())
