"""`python -m selfheal_bench.reliability [--full]`: every scenario, its figures, out/reliability.json."""

import sys

from .run import main

sys.exit(main())
