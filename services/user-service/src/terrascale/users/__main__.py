import sys

from terrascale.users.cli import main

sys.exit(main())
