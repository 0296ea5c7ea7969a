"""``python -m mayastor.demo``: the same as `mayastor-demo`."""

import sys

from mayastor.demo import main

sys.exit(main())
