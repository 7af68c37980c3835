#!/usr/bin/env bash
# The GPU check a session lent a CUDA machine runs (about 5 minutes): the CUDA-marked tests
# (no host sync between log steps under torch.cuda.set_sync_debug_mode("error"), bf16,
# fused, compiled and CUDA-graph runs, a fused resume, one buffer against separate tensors),
# bench.py on CUDA (fp32 with the separate-tensor, fused, compiled and CUDA-graph rows; bf16
# for DCGAN), and DCGAN runs of 300 steps in fp32 (one buffer and separate tensors), bf16,
# fused, compiled, with CUDA graphs, and bf16 compiled, each printing its steps/s and the
# seconds its compilation took.
#   bash scripts/gpu_check.sh 2>&1 | tee gpu_check.log
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "|", torch.cuda.get_device_name())
PY
python -m pytest -q -m cuda tests
echo "== bench.py on CUDA (fp32)"
python scripts/bench.py --device cuda --steps 300 --reps 3 --separate --fused --compiled
echo "== bench.py on CUDA, DCGAN in bf16"
python scripts/bench.py --device cuda --steps 300 --reps 3 --configs dcgan --extra trainer.amp=bf16
echo "== DCGAN on digits, 300 steps: steps/s of training"
out="$(mktemp -d)"
for flags in "trainer.amp=none" "trainer.flat_params=false" "trainer.amp=bf16" \
    "trainer.fused=true" "trainer.compile=true" "trainer.cuda_graphs=true" \
    "trainer.amp=bf16 trainer.compile=true"; do
    dir="$out/${flags//[ =.]/_}"
    # shellcheck disable=SC2086
    python train.py trainer.device=cuda model=dcgan data=digits trainer.steps=300 \
        trainer.progress=false trainer.eval_every=0 $flags hydra.run.dir="$dir"
    python -c "import json,sys; m=json.load(open(sys.argv[1])); print(f'{sys.argv[2]:40s} {m[\"status\"]:4s} {m[\"steps_per_sec\"]:8.1f} steps/s, compiled in {m.get(\"compile_seconds\")} s')" \
        "$dir/metrics.json" "$flags"
done
rm -rf "$out"
