#!/usr/bin/env bash
# The GPU check of the 8xb32 recipe's step: NPID with ResNet-50 at 224x224, 32 images per
# device, in float32 and in bf16 mixed precision, on XLA's CUDA backend against PyTorch eager
# on the same GPU (images/s), then two iterations of configs/npid/resnet50_8xb32-steplr-200e
# on generated 224x224 images.
#
#   tools/gpu_check.sh build    here (x86-64, cgo): builds bin/goselfsup with XLA and copies
#                               ../shared/gpu/pjrt-env.sh beside it
#   tools/gpu_check.sh run      on the GPU machine, from the repository root, with bin/
#                               carried: points GoMLX at jax's CUDA PJRT plugin and runs the
#                               checks; results go to $OUT (or gpu_check/) as text and JSON
#
# With the device tool: run(command="tools/gpu_check.sh run", carry=["bin"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
build)
  export GOFLAGS=${GOFLAGS:--mod=mod}
  mkdir -p bin
  CGO_ENABLED=1 GOARCH=amd64 go build -o bin/goselfsup ./cmd/goselfsup
  cp ../shared/gpu/pjrt-env.sh bin/
  ls -l bin
  ;;
run)
  out=${OUT:-gpu_check}
  mkdir -p "$out"
  # shellcheck source=/dev/null
  source bin/pjrt-env.sh
  nvidia-smi | tee "$out/nvidia-smi.txt" || true
  steps=${STEPS:-20}
  for prec in f32 bf16; do
    amp=()
    [ "$prec" = bf16 ] && amp=(-amp)
    echo "== ResNet-50 NPID step, 224x224, 32 images, $prec" >&2
    timeout 240 ./bin/goselfsup benchmark train-step -model resnet50 -backend "$GOMLX_BACKEND" -devices 1 \
      -batch 32 -steps "$steps" -warmup 3 -reference-device cuda "${amp[@]}" 2>&1 | tee "$out/r50_step_$prec.txt" || true
  done
  echo "== two iterations of the 8xb32 config on generated 224x224 images" >&2
  timeout 240 ./bin/goselfsup train configs/npid/resnet50_8xb32-steplr-200e.toml --work-dir "$out/r50_run" \
    --set 'train_dataloader.dataset={_delete_=true, type="DemoShapes", num_samples=64, size=224, pipeline=[{type="RandomResizedCrop", size=224, scale=[0.2, 1.0]}, {type="RandomFlip", prob=0.5}, {type="PackSelfSupInputs", algorithm_keys=["sample_idx"]}]}' \
    --set train_dataloader.num_workers=4 --set model.memory_bank.length=64 --set train_cfg.max_epochs=1 --set 'param_scheduler=[]' \
    --set default_hooks.logger.interval=1 2>&1 | tee "$out/r50_run.txt" || true
  ;;
*)
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
