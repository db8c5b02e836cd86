"""Shared test settings: set before any test module imports torch."""

import os

# Spinning OpenMP workers make torch's many small operations 10x slower on a busy 2-core
# machine; the CLI sets the same default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
