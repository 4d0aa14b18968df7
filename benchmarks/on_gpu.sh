#!/usr/bin/env bash
# Every figure the README and the open issues ask of a GPU, in one run that fits a short lease.
#
#     benchmarks/on_gpu.sh [PART ...]        parts: tests inference stall highres paper (default: all)
#
# Environment: DEVICE (default cuda), FIGURES (the folder the logs go to, default gpu-figures),
# QUICK=1 (tiny widths, sizes and counts: checks the script itself, on any device, in a minute or two).
# Each part runs under its own time limit (LIMIT_<PART> seconds) so that one slow part cannot take
# the others' time; its whole output goes to $FIGURES/<part>.log and its last lines to stdout.
#
#   tests      the tests that need a CUDA device (pinned-memory snapshots, device-side augmentation)
#   inference  benchmarks/inference_speed.py (whole zoo translate processes, forward passes by format),
#              then zoo benchmark on the same translator
#   stall      benchmarks/checkpoint_stall.py: a checkpoint's stall in the loop and off it
#   highres    benchmarks/high_resolution.py: peak memory and step time with and without
#              --activation-checkpointing, at 512 and 1024
#   paper      the steady step rate of each paper-objectives run (unet_256 with each objective, 256 x 256
#              crops of 286, batch 1) and the time 595,000 steps (200 epochs of Cityscapes' 2,975
#              pairs) take at that rate: README "Reproducing the paper"
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
FIGURES=${FIGURES:-gpu-figures}
QUICK=${QUICK:-0}
mkdir -p "$FIGURES"
export PYTHONUNBUFFERED=1

if [ "$QUICK" = 1 ]; then
    G="unet_256(ngf=8)"; D="patch70(ndf=8)"; RESNET="resnet_9blocks(ngf=8)"
    INFERENCE=(--images 4 --rounds 1 --spec "$G"); BENCHMARK=(--repeats 2)
    STALL=(--spec "$G+$D+l1cgan" --steps 4 --every 2 --rounds 1)
    HIGHRES=(--generators "$G,$RESNET" --sizes 256 --steps 1 --warmup 1)
    PAPER_STEPS=8
else
    G="unet_256"; D="patch70"; RESNET="resnet_9blocks"
    INFERENCE=(--images 48 --rounds 2); BENCHMARK=(--repeats 10)
    STALL=(--rounds 2)
    HIGHRES=(--generators "$G,$RESNET" --sizes 512 1024 --steps 3 --warmup 2)
    PAPER_STEPS=600
fi

part_tests() {
    python3 -m pytest -q -p no:cacheprovider tests/test_checkpoint_writer.py tests/test_augment.py -rs
}

part_inference() {
    python3 benchmarks/inference_speed.py --device "$DEVICE" "${INFERENCE[@]}" --keep "$FIGURES/inference" \
        --json "$FIGURES/inference.json" || return
    python3 -m pix2pix_zoo benchmark "$FIGURES/inference/translator/model.safetensors" --device "$DEVICE" \
        --size 256 --batch 1 --batch 8 "${BENCHMARK[@]}"
}

part_stall() {
    python3 benchmarks/checkpoint_stall.py --device "$DEVICE" "${STALL[@]}"
}

part_highres() {
    python3 benchmarks/high_resolution.py --device "$DEVICE" "${HIGHRES[@]}" --variants reference,ours,ours+ckpt
}

part_paper() {
    local index=0 spec
    for spec in "$G+l1" "$G+$D+gan" "$G+$D+cgan" "$G+$D+l1gan" "$G+$D+l1cgan"; do
        index=$((index + 1))
        python3 -m pix2pix_zoo train "$spec" --data synthfacades --load-size 286 --crop-size 256 \
            --max-steps "$PAPER_STEPS" --log-every $((PAPER_STEPS / 6)) --sample-every 1000000 --device "$DEVICE" \
            --runs "$FIGURES/runs" --name "objective-$index" --no-progress >/dev/null || return
        python3 - "$FIGURES/runs/objective-$index" "$spec" <<'PY'
import json, sys
from pathlib import Path
run, spec = Path(sys.argv[1]), sys.argv[2]
steady = json.loads((run / "config.json").read_text())["timings"][-1]["steady_img_per_s"]  # batch 1: steps/s
windows = [json.loads(line)["img_per_s"] for line in (run / "metrics.jsonl").read_text().splitlines()]
print(f"{spec}: steady {steady:.1f} steps/s (by window: {', '.join(f'{w:.1f}' for w in windows)}); "
      f"595,000 steps at that rate: {200 * 2975 / steady / 3600:.1f} h")
PY
    done
}

if [ "${1:-}" = "--run-part" ]; then  # internal: one part, in the process group timeout gives it
    "part_$2"
    exit
fi

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests inference stall highres paper)
for part in "${parts[@]}"; do
    if ! declare -F "part_$part" >/dev/null; then
        echo "unknown part '$part'; choose from: tests inference stall highres paper" >&2
        exit 2
    fi
done
python3 -c "import torch; print('torch', torch.__version__, '|',
                torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
status=0
for part in "${parts[@]}"; do
    limit_variable="LIMIT_${part^^}"
    limit=${!limit_variable:-300}
    started=$(date +%s)
    timeout -k 10 "$limit" "$0" --run-part "$part" > "$FIGURES/$part.log" 2>&1
    code=$?
    echo "== $part: exit $code after $(( $(date +%s) - started )) s (limit $limit s; 124: stopped there);" \
        "$FIGURES/$part.log ends:"
    tail -n 25 "$FIGURES/$part.log"
    [ "$code" -eq 0 ] || status=1
done
exit $status
