"""Command-line flags -> Settings. Every default is written once, on `Settings`; the parser
extends KServe's, so KServe's own flags (--http_port, --grpc_port, ...) work too."""

import argparse
import os
import tempfile
from dataclasses import dataclass, fields
from typing import Optional

from .checkpoints import MODEL_SIZES

DEFAULT_MODEL_NAME = "sam2"


@dataclass(frozen=True)
class Settings:
    model_name: str = DEFAULT_MODEL_NAME
    model_size: str = "tiny"
    model_dir: str = "/mnt/models"
    checkpoint: Optional[str] = None
    image_size: Optional[int] = None
    device: str = "auto"
    compile: bool = False
    object_lanes: bool = False
    max_upload_mb: int = 1024
    max_frames: int = 20000
    max_pixels: int = 3840 * 2160
    max_points: int = 64
    max_objects: int = 16
    request_timeout: float = 1800.0
    max_queue: int = 2
    grace_period: float = 30.0
    spool_dir: str = tempfile.gettempdir()
    video_cache_mb: int = 2048
    video_cache_ttl: float = 900.0

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


_D = Settings()


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_size", choices=sorted(MODEL_SIZES), default=_D.model_size,
                        help="SAM2.1 size: picks the config and the checkpoint file name.")
    parser.add_argument("--model_dir", default=_D.model_dir,
                        help="Folder holding sam2.1_hiera_<size>.pt (KServe's storage "
                             "initializer puts storageUri there).")


def build_parser() -> argparse.ArgumentParser:
    from kserve import model_server  # KServe's own flags (--http_port, --grpc_port, ...)

    parser = argparse.ArgumentParser(
        prog="python -m model", parents=[model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Serve SAM2 video tracking: POST /track, KServe v2 REST and gRPC, /health, "
                    "/metrics. `python -m model download --help` fetches checkpoints.")
    parser.set_defaults(model_name=_D.model_name)
    add_model_flags(parser)
    add = parser.add_argument
    add("--checkpoint", default=_D.checkpoint,
        help="Checkpoint file to load; overrides --model_dir.")
    add("--image_size", type=_positive_int, default=_D.image_size,
        help="Model input size (multiple of 32); default: the config's 1024. Smaller is faster "
             "and coarser.")
    add("--device", choices=["auto", "cuda", "cpu"], default=_D.device,
        help="auto = cuda when available.")
    add("--compile", action="store_true", default=_D.compile,
        help="torch.compile the model (SAM2's vos_optimized). Minutes of compiling at start-up, "
             "faster tracking on a GPU.")
    add("--object_lanes", action=argparse.BooleanOptionalAction, default=_D.object_lanes,
        help="CPU only, experimental: track the objects of a frame two at a time, each on half "
             "the threads (same masks). ~8 %% faster in one process at 2 objects on 2 cores, no "
             "gain shown through the server yet (bench/README.md).")
    add("--max_upload_mb", type=_positive_int, default=_D.max_upload_mb,
        help="Largest accepted upload in MiB; bigger ones get 413 at once.")
    add("--max_frames", type=_positive_int, default=_D.max_frames,
        help="Most frames per video.")
    add("--max_pixels", type=_positive_int, default=_D.max_pixels,
        help="Most pixels per frame (width x height).")
    add("--max_points", type=_positive_int, default=_D.max_points,
        help="Most clicks per request, all objects and frames together.")
    add("--max_objects", type=_positive_int, default=_D.max_objects,
        help="Most objects per request (obj_id values in the prompts).")
    add("--request_timeout", type=float, default=_D.request_timeout,
        help="Per-request deadline in seconds, from admission to the last mask.")
    add("--max_queue", type=int, default=_D.max_queue,
        help="Requests that may wait behind the running one; beyond: 503.")
    add("--grace_period", type=float, default=_D.grace_period,
        help="On SIGTERM, seconds a running job gets to finish before it is cancelled.")
    add("--spool_dir", default=os.environ.get("SPOOL_DIR") or _D.spool_dir,
        help="Where uploads are spooled (each removed when its job ends).")
    add("--video_cache_mb", type=int, default=_D.video_cache_mb,
        help="Disk for videos kept for the web page and re-tracking (POST /videos), under "
             "--spool_dir; oldest first out. 0 turns the store off.")
    add("--video_cache_ttl", type=float, default=_D.video_cache_ttl,
        help="Seconds a kept video stays after its last use.")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)})
