import sys

from catalog_sync.cli import main

sys.exit(main())
