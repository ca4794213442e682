"""Write a SAM2.1 checkpoint with random weights in the official file format.

The official weights cannot be downloaded everywhere (CI, air-gapped clusters). A file with
the real architecture and random weights exercises every code path of the service: it is
loaded by the same code as `sam2.1_hiera_tiny.pt` (`torch.load(weights_only=True)["model"]`,
strict keys). Masks made with it are meaningless (they cover ~70 % of a frame), but they are
deterministic, so tests compare the service with the plain library on the same file.

    python tools/random_checkpoint.py --model_size tiny --out /tmp/sam2.1_hiera_tiny.pt

~2 s and 149 MiB for tiny on a 2-core CPU; the file is bit-identical across torch versions.
"""

import argparse
import os
import sys

# Run from a checkout without installing: the repository root holds the `model` package.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None) -> int:
    from model.checkpoints import MODEL_SIZES
    from model.sam2_build import write_random_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_size", choices=sorted(MODEL_SIZES), default="tiny",
                        help="Which SAM2.1 architecture to instantiate.")
    parser.add_argument("--out", required=True, help="Where to write the .pt file.")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed for the weights.")
    args = parser.parse_args(argv)
    write_random_checkpoint(args.model_size, args.out, seed=args.seed)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
