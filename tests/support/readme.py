"""The README's examples, taken verbatim for the tests that run them."""

import os
import re

from . import REPO


def readme_block(name: str, path: str = "README.md") -> str:
    """The fenced block after `<!-- example: NAME -->` in the README, verbatim."""
    text = open(os.path.join(REPO, path)).read()
    m = re.search(r"<!-- example: " + re.escape(name) + r" -->\s*```\w*\n(.*?)```", text, re.S)
    assert m, f"{path} has no example block {name!r}"
    return m.group(1)
