"""The wheel the image installs (Dockerfile: `pip wheel /src`, then `pip install *.whl`) holds
every module of the package and the web page's files: a subpackage left out of it imports here,
from the source tree, and fails only in the image."""

import os
import subprocess
import sys
import zipfile

import pytest

from support import REPO

pytestmark = pytest.mark.slow


def test_the_wheel_holds_every_module_and_the_page(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), REPO],
                   check=True, cwd=tmp_path, timeout=300)
    (wheel,) = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    source = set()
    for folder, _, files in os.walk(os.path.join(REPO, "model")):
        for f in files:
            if f.endswith((".py", ".html", ".js", ".css")):
                source.add(os.path.relpath(os.path.join(folder, f), REPO))
    assert "model/outputs/zip_png.py" in source and "model/web/page.js" in source
    assert source <= names, sorted(source - names)
