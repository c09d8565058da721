import sys

from tollway.cli import main

sys.exit(main())
