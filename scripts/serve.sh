#!/usr/bin/env bash
# Install (first run only) and start the service on http://localhost:8000.
#   MODEL_SIZE=tiny|small|base_plus|large  MODEL_DIR=checkpoints  PORT=8000
# Extra arguments go to `python -m model` (e.g. --image_size 512 --device cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_SIZE=${MODEL_SIZE:-tiny}
MODEL_DIR=${MODEL_DIR:-checkpoints}
PORT=${PORT:-8000}

bash scripts/install.sh
if [ ! -f "$MODEL_DIR/sam2.1_hiera_${MODEL_SIZE}.pt" ]; then
  .venv/bin/python -m model download --model_size "$MODEL_SIZE" --model_dir "$MODEL_DIR" || {
    echo "No checkpoint: put sam2.1_hiera_${MODEL_SIZE}.pt into $MODEL_DIR/ and run this again." >&2
    exit 1
  }
fi
exec .venv/bin/python -m model --model_name sam2 --model_size "$MODEL_SIZE" \
  --model_dir "$MODEL_DIR" --http_port "$PORT" "$@"
