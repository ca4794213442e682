"""`python -m model`: serve SAM2 video tracking. `python -m model download`: fetch weights.
`python -m model track VIDEO ...` (or `sam2-tracker track`): the command-line client."""

import argparse
import logging
import os
import sys
import warnings

def _configure_logging() -> None:
    """The one place logging is configured: every module logs under the package's namespace."""
    logger = logging.getLogger(__package__ or "model")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # sam2 was built without its CUDA extension (SAM2_BUILD_CUDA=0 where nvcc is absent): it
    # warns on every job and skips hole filling. Once at start-up is enough.
    warnings.filterwarnings("ignore", message=r"(?s).*Skipping the post-processing step")
    # The library's tqdm bars (one per propagation) would flood the logs.
    os.environ.setdefault("TQDM_DISABLE", "1")


def download_main(argv) -> int:
    from .checkpoints import MODEL_SIZES, CheckpointError, download
    from .settings import add_model_flags

    parser = argparse.ArgumentParser(
        prog="python -m model download",
        description="Download an official SAM2.1 checkpoint (with a progress bar, an atomic "
                    "rename and a size check). Does nothing if the file is already there.")
    add_model_flags(parser)
    parser.add_argument("--url", default=None, help="Mirror to fetch from (default: Meta's).")
    parser.add_argument("--sha256", default=None, help="Expected SHA-256, checked if given.")
    parser.add_argument("--force", action="store_true", help="Download even if present.")
    args = parser.parse_args(argv)
    try:
        path = download(args.model_size, args.model_dir, url=args.url, sha256=args.sha256,
                        force=args.force)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # URLError, timeouts, disk full
        url = args.url or MODEL_SIZES[args.model_size].url
        print(f"error: could not download {url}: {exc}. Without network access, copy "
              f"{MODEL_SIZES[args.model_size].filename} into {args.model_dir} by other means.",
              file=sys.stderr)
        return 1
    print(path)
    return 0


def serve_main(argv) -> int:
    from .checkpoints import CheckpointError, resolve_checkpoint
    from .memory import keep_freed_pages
    from .predictor import Sam2Tracker
    from .server import TrackerServer, configure_grpc_limits
    from .settings import build_parser, settings_from_args
    from .video import harden_ffmpeg

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers != 1:
        parser.error("--workers must be 1: one process owns the GPU and the job queue; scale "
                     "with replicas")
    settings = settings_from_args(args)
    try:
        resolve_checkpoint(settings.model_size, settings.model_dir, settings.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.makedirs(settings.spool_dir, exist_ok=True)
    harden_ffmpeg()
    if keep_freed_pages():
        logging.getLogger("model").info("heap: large buffers reused, trimmed only when it grows "
                                        "(set MALLOC_* or GLIBC_TUNABLES to choose otherwise)")
    configure_grpc_limits(settings.max_upload_bytes * 4 // 3 + 2**20)
    model = Sam2Tracker(settings)
    server = TrackerServer(
        model, http_port=args.http_port, grpc_port=args.grpc_port, workers=1,
        max_threads=args.max_threads, max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc, enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format, event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive)
    return server.serve()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "track":  # the client: its own progress bars, no server logging
        from .client import main as track_main

        return track_main(argv[1:])
    _configure_logging()
    if argv and argv[0] == "download":
        return download_main(argv[1:])
    return serve_main(argv)


if __name__ == "__main__":
    sys.exit(main())
