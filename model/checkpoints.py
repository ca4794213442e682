"""Model sizes -> config, checkpoint file and official URL; resolving, verifying, downloading.

Serving never downloads: `python -m model download` is its own command (as in TGI), and a missing
file at start-up is an immediate error that names the path and that command.
"""

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from typing import Optional

logger = logging.getLogger(__name__)

OFFICIAL_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"


@dataclass(frozen=True)
class ModelSize:
    name: str
    config: str  # package-relative Hydra config name inside `sam2`
    filename: str
    params_m: float
    # The official files are 149 / 176 / 309 / 857 MiB. Meta publishes no hashes, so we check
    # the size against a window around them, then the keys and shapes when the model loads.
    min_bytes: int
    max_bytes: int

    @property
    def url(self) -> str:
        return f"{OFFICIAL_BASE_URL}/{self.filename}"


_MiB = 1024 * 1024
MODEL_SIZES = {
    s.name: s
    for s in (
        ModelSize("tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt", 38.9,
                  140 * _MiB, 160 * _MiB),
        ModelSize("small", "configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt", 46.0,
                  165 * _MiB, 190 * _MiB),
        ModelSize("base_plus", "configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt",
                  80.8, 290 * _MiB, 330 * _MiB),
        ModelSize("large", "configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt", 224.4,
                  820 * _MiB, 900 * _MiB),
    )
}


class CheckpointError(RuntimeError):
    """The checkpoint is missing, truncated or for another architecture. Start-up stops here."""


def download_command(size: str, model_dir: str) -> str:
    return f"python -m model download --model_size {size} --model_dir {model_dir}"


def resolve_checkpoint(size: str, model_dir: str, checkpoint: Optional[str] = None) -> str:
    """The file to load: --checkpoint when given, else <model_dir>/<official file name>.

    KServe's storage initializer copies what `storageUri` names into /mnt/models; when that was a
    single file or a folder with another name in it, a lone *.pt in model_dir is accepted too.
    """
    spec = MODEL_SIZES[size]
    if checkpoint:
        if not os.path.isfile(checkpoint):
            raise CheckpointError(
                f"checkpoint {checkpoint!r} does not exist. Get the official one with: "
                f"{download_command(size, os.path.dirname(checkpoint) or '.')}"
            )
        return checkpoint
    path = os.path.join(model_dir, spec.filename)
    if os.path.isfile(path):
        return path
    if os.path.isdir(model_dir):
        candidates = sorted(f for f in os.listdir(model_dir) if f.endswith(".pt"))
        if len(candidates) == 1:
            return os.path.join(model_dir, candidates[0])
    raise CheckpointError(
        f"no SAM2.1 {size} checkpoint at {path!r}. Get it with: "
        f"{download_command(size, model_dir)} "
        f"(or pass --checkpoint PATH, or point the InferenceService's storageUri at the file)"
    )


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * _MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(size: str, path: str, sha256: Optional[str] = None) -> None:
    spec = MODEL_SIZES[size]
    n = os.path.getsize(path)
    if not spec.min_bytes <= n <= spec.max_bytes:
        raise CheckpointError(
            f"{path} is {n / _MiB:.1f} MiB; the official {spec.filename} is "
            f"{spec.min_bytes / _MiB:.0f}-{spec.max_bytes / _MiB:.0f} MiB "
            f"(truncated or another model?)"
        )
    if sha256:
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise CheckpointError(f"{path} has sha256 {actual}, expected {sha256}")


def download(size: str, model_dir: str, url: Optional[str] = None, sha256: Optional[str] = None,
             force: bool = False, progress: bool = True) -> str:
    """Fetch the official checkpoint into model_dir, atomically, with a progress bar.

    An existing file of plausible size is kept (the command is idempotent). A download goes to a
    temporary file beside the target and is renamed only after its length matches the server's
    Content-Length and the size check passes, so an interrupted download never looks complete.
    Writes <file>.sha256 so a later copy can be compared with `sha256sum -c`.
    """
    from tqdm import tqdm

    spec = MODEL_SIZES[size]
    url = url or spec.url
    os.makedirs(model_dir, exist_ok=True)
    target = os.path.join(model_dir, spec.filename)
    if os.path.isfile(target) and not force:
        verify_file(size, target, sha256)
        logger.info("%s already present (%.1f MiB); nothing to download", target,
                    os.path.getsize(target) / _MiB)
        return target

    fd, part = tempfile.mkstemp(prefix=spec.filename + ".", suffix=".part", dir=model_dir)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            expected = int(resp.headers.get("Content-Length") or 0)
            with tqdm(total=expected or None, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=spec.filename, disable=not progress) as bar:
                while True:
                    block = resp.read(_MiB)
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        got = os.path.getsize(part)
        if expected and got != expected:
            raise CheckpointError(f"download of {url} stopped at {got} of {expected} bytes")
        verify_file(size, part)
        if sha256 and digest.hexdigest() != sha256.lower():
            raise CheckpointError(f"{url} has sha256 {digest.hexdigest()}, expected {sha256}")
        shutil.move(part, target)
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise
    with open(target + ".sha256", "w") as f:
        f.write(f"{digest.hexdigest()}  {spec.filename}\n")
    logger.info("downloaded %s (%.1f MiB, sha256 %s)", target, got / _MiB, digest.hexdigest())
    return target
