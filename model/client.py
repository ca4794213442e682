"""`sam2-tracker track VIDEO ...` (also `python -m model track`): track objects with a running
server from the command line, with progress bars, retries when the server is busy, and an output
file that is either complete or absent.

    sam2-tracker track video.mp4 --point 320,180 -o masks.zip
    sam2-tracker track video.mp4 --object 1 --point 320,180 --label 1 --point 400,200 --label 0 \
        --object 2 --frame 10 --box 100,100,200,220 --format rle -o masks.ndjson
    sam2-tracker track video.mp4 --prompts prompts.json --preview -o out/   # extract into out/

Exit codes: 0 done; 2 the server refused the request (4xx: its message is printed) or the
arguments are wrong; 1 anything else (server unreachable, busy after every retry, answer cut
off, a 5xx).
"""

import argparse
import json
import os
import sys
from typing import List, Optional

from .client_io import ClientError, Refused, track

DEFAULT_SERVER = "http://localhost:8000"


def _pair(text: str, n: int, what: str) -> List[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{what} must be {n} numbers separated by commas, "
                                         f"got {text!r}")
    return values


class _Grouped(argparse.Action):
    """--point/--label/--box/--frame/--mask go to the object named by the last --object."""

    def __call__(self, parser, namespace, value, option_string=None):
        groups = namespace.objects
        if self.dest == "object" or not groups:
            groups.append({"obj_id": value if self.dest == "object" else 1, "points": [],
                           "labels": [], "frame_idx": None, "box": None, "mask": None,
                           "implicit": self.dest != "object"})
            if self.dest == "object":
                return
        group = groups[-1]
        if self.dest == "point":
            group["points"].append(_pair(value, 2, "--point"))
        elif self.dest == "label":
            if value not in ("0", "1"):
                parser.error(f"--label must be 1 (on the object) or 0 (not on it), got {value}")
            group["labels"].append(int(value))
        elif self.dest == "box":
            group["box"] = _pair(value, 4, "--box")
        elif self.dest == "frame":
            group["frame_idx"] = int(value)
        elif self.dest == "mask":
            group["mask"] = value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sam2-tracker track", description="Track objects through a video with a running "
        "sam2-tracker server. Prompts after --object N belong to object N (without --object: "
        "object 1).", epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="The video file (mp4, webm, mov, mkv, avi).")
    p.add_argument("--object", type=int, action=_Grouped, dest="object", metavar="ID",
                   help="Start the prompts of object ID (1..255).")
    p.add_argument("--point", action=_Grouped, metavar="X,Y",
                   help="A click in pixels of the original frame; repeat for more.")
    p.add_argument("--label", action=_Grouped, metavar="1|0",
                   help="For each --point, in order: 1 on the object (default), 0 not on it.")
    p.add_argument("--box", action=_Grouped, metavar="X1,Y1,X2,Y2", help="A box around it.")
    p.add_argument("--frame", action=_Grouped, metavar="N",
                   help="The frame these prompts are on (0-based, decode order; default 0).")
    p.add_argument("--mask", action=_Grouped, metavar="PNG",
                   help="A mask PNG of the video's size as the object's prompt on --frame.")
    p.add_argument("--prompts", metavar="FILE",
                   help="The long-form prompts JSON (README) instead of the options above.")
    p.add_argument("--format", choices=["png", "palette", "rle"], default="png",
                   help="png: ZIP of 0/255 PNGs; palette: ZIP of indexed PNGs; rle: NDJSON.")
    p.add_argument("--preview", action="store_true", help="Add preview.mp4 to the ZIP.")
    p.add_argument("--direction", choices=["both", "forward", "backward"], default=None)
    p.add_argument("--max-frames-to-track", type=int, default=None, metavar="N")
    p.add_argument("-o", "--output", required=True,
                   help="A file (masks.zip, masks.ndjson), or a folder (existing, or ending "
                        "in /) to extract the ZIP into.")
    p.add_argument("--server", default=os.environ.get("SAM2_TRACKER_URL", DEFAULT_SERVER),
                   help="The server (env SAM2_TRACKER_URL; default %(default)s).")
    p.add_argument("--retries", type=int, default=8,
                   help="How often to retry when the server is busy (503 + Retry-After).")
    p.add_argument("--max-wait", type=float, default=600,
                   help="Longest single wait, in seconds, when the server says busy.")
    p.add_argument("--timeout", type=float, default=3600, help="Seconds without a byte.")
    p.add_argument("--quiet", action="store_true", help="No progress bars.")
    p.set_defaults(objects=[])
    return p


def short_form(group: dict) -> dict:
    """Object 1 on one frame, no mask: the query's short form (the ZIP keeps masks/NNNNN.png)."""
    params = {"frame_idx": group["frame_idx"] or 0,
              "points": [f"{x:g},{y:g}" for x, y in group["points"]]}
    if group["labels"]:
        params["labels"] = group["labels"]
    if group["box"]:
        params["box"] = ",".join(f"{v:g}" for v in group["box"])
    return params


def prompts_from(args, parser) -> Optional[list]:
    """The long form's entries (from --prompts or the --object groups)."""
    if args.prompts:
        if args.objects:
            parser.error("give either --prompts FILE or --object/--point/--box, not both")
        with open(args.prompts) as f:
            return json.load(f)
    if not args.objects:
        parser.error("give at least one --point X,Y or --box, or --prompts FILE")
    entries = []
    for g in args.objects:
        if g["labels"] and len(g["labels"]) != len(g["points"]):
            parser.error(f"object {g['obj_id']}: {len(g['labels'])} --label for "
                         f"{len(g['points'])} --point")
        entry = {"obj_id": g["obj_id"], "frame_idx": g["frame_idx"] or 0}
        if g["points"]:
            entry["points"] = g["points"]
            entry["labels"] = g["labels"] or [1] * len(g["points"])
        if g["box"]:
            entry["box"] = g["box"]
        if g["mask"]:
            entry["mask"] = g["mask"]
        if len(entry) == 2:
            parser.error(f"object {g['obj_id']} has no --point, --box or --mask")
        entries.append(entry)
    return entries


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    entries = prompts_from(args, parser)
    options = {"format": args.format}
    group = args.objects[0] if len(args.objects) == 1 else {}
    if group.get("implicit") and not group["mask"]:
        options.update(short_form(group))  # no --object: the simple answer layout
        entries = None
    if args.preview:
        options["preview"] = "mp4"
    if args.direction:
        options["direction"] = args.direction
    if args.max_frames_to_track:
        options["max_frames_to_track"] = args.max_frames_to_track
    try:
        summary = track(args.server, args.video, entries, options, args.output,
                        retries=args.retries, max_wait=args.max_wait, timeout=args.timeout,
                        progress=not args.quiet and sys.stderr.isatty())
    except Refused as exc:
        print(f"error: the server refused the request ({exc.status}): {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    print(summary)
    return 0
