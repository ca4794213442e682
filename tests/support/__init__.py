"""Test support: real videos, the reference library run, the real server process, the fake
engine and the in-process app. Imported as `support.*` (pytest puts tests/ on sys.path)."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SIZE = 256  # fast on 2 CPU cores (~0.16 s per frame for hiera tiny)
