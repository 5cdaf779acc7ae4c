import sys

from doorpi.cli import main

sys.exit(main())
