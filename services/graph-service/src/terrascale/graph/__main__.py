import sys

from terrascale.graph.cli import main

sys.exit(main())
