"""Command-line flags -> Settings. The parser extends KServe's, so its flags work too."""

import argparse
import os
import tempfile
from dataclasses import dataclass
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
    max_upload_mb: int = 1024
    max_frames: int = 20000
    max_pixels: int = 3840 * 2160
    max_points: int = 64
    request_timeout: float = 1800.0
    max_queue: int = 2
    grace_period: float = 30.0
    spool_dir: str = tempfile.gettempdir()

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_size", choices=sorted(MODEL_SIZES), default="tiny",
                        help="SAM2.1 size: picks the config and the checkpoint file name.")
    parser.add_argument("--model_dir", default="/mnt/models",
                        help="Folder holding sam2.1_hiera_<size>.pt (KServe's storage "
                             "initializer puts storageUri there).")


def build_parser() -> argparse.ArgumentParser:
    from kserve import model_server  # KServe's own flags (--http_port, --grpc_port, ...)

    parser = argparse.ArgumentParser(
        prog="python -m model", parents=[model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Serve SAM2 video tracking: POST /track, KServe v2 REST and gRPC, /health, "
                    "/metrics. `python -m model download --help` fetches checkpoints.")
    parser.set_defaults(model_name=DEFAULT_MODEL_NAME)
    add_model_flags(parser)
    parser.add_argument("--checkpoint", default=None,
                        help="Checkpoint file to load; overrides --model_dir.")
    parser.add_argument("--image_size", type=_positive_int, default=None,
                        help="Model input size (multiple of 32); default: the config's 1024. "
                             "Smaller is faster and coarser.")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                        help="auto = cuda when available.")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (SAM2's vos_optimized). Minutes of "
                             "compiling at start-up, faster tracking on a GPU.")
    parser.add_argument("--max_upload_mb", type=_positive_int, default=1024,
                        help="Largest accepted upload in MiB; bigger ones get 413 at once.")
    parser.add_argument("--max_frames", type=_positive_int, default=20000,
                        help="Most frames per video.")
    parser.add_argument("--max_pixels", type=_positive_int, default=3840 * 2160,
                        help="Most pixels per frame (width x height).")
    parser.add_argument("--max_points", type=_positive_int, default=64,
                        help="Most clicks per request.")
    parser.add_argument("--request_timeout", type=float, default=1800.0,
                        help="Per-request deadline in seconds, from admission to the last mask.")
    parser.add_argument("--max_queue", type=int, default=2,
                        help="Requests that may wait behind the running one; beyond: 503.")
    parser.add_argument("--grace_period", type=float, default=30.0,
                        help="On SIGTERM, seconds a running job gets to finish before it is "
                             "cancelled.")
    parser.add_argument("--spool_dir", default=os.environ.get("SPOOL_DIR") or tempfile.gettempdir(),
                        help="Where uploads and frame spill files go (removed after each job).")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        model_name=args.model_name, model_size=args.model_size, model_dir=args.model_dir,
        checkpoint=args.checkpoint, image_size=args.image_size, device=args.device,
        compile=args.compile, max_upload_mb=args.max_upload_mb, max_frames=args.max_frames,
        max_pixels=args.max_pixels, max_points=args.max_points,
        request_timeout=args.request_timeout, max_queue=args.max_queue,
        grace_period=args.grace_period, spool_dir=args.spool_dir)
