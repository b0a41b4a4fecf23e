import sys

from terrascale.posts.cli import main

sys.exit(main())
