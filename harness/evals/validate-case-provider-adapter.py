#!/usr/bin/env python3
"""The seed's name (CTO-WORK-017/018) for `cto-harness validate case [--json]`."""

import sys

from cto_harness.cli import main

if __name__ == "__main__":
    sys.argv = ["cto-harness", "validate", "case", *sys.argv[1:]]
    main()
