import sys

from jaxmag.cli import main

sys.exit(main())
