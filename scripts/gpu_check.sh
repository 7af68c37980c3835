#!/usr/bin/env bash
# The GPU check a session lent a CUDA machine runs (about 5 minutes): the CUDA-marked tests
# (no host sync between log steps under torch.cuda.set_sync_debug_mode("error"), bf16 and
# torch.compile runs), bench.py on CUDA in fp32, bf16 and compiled, and a 300-step run.
#   bash scripts/gpu_check.sh 2>&1 | tee gpu_check.log
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "|", torch.cuda.get_device_name())
PY
python -m pytest -q -m cuda tests
for extra in "" "trainer.amp=bf16" "trainer.compile=true"; do
    echo "== bench.py on CUDA ${extra:-(fp32)}"
    python scripts/bench.py --device cuda --steps 300 --reps 3 ${extra:+--extra $extra}
done
python train.py trainer.device=cuda trainer.steps=300 trainer.progress=false \
    hydra.run.dir=outputs/gpu_check
