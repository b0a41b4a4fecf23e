import sys

from terrascale.notifications.cli import main

sys.exit(main())
