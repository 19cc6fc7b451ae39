"""The peer the prefill bench is compared with, run in the same GPU-machine call: Hugging Face transformers'
DeepseekV2ForCausalLM at the bench's shapes (bench/configs/deepseek-v2-lite.config.json), random bf16 weights,
sdpa attention, timed prefills of the same prompt lengths (median of 5 with min-max, CUDA-synchronized wall
clock, like bench/prefill.ts). Writes $BENCH_OUT/pytorch-prefill.json.
    python3 bench/references/pytorch_prefill.py [tokens ...]      (default 1024 4096)
"""
import json, os, statistics, sys, time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

here = os.path.dirname(os.path.abspath(__file__))
cfg = AutoConfig.from_pretrained(os.path.join(here, "..", "configs", "deepseek-v2-lite.config.json"))
cfg._attn_implementation = "sdpa"
tokens_list = [int(t) for t in sys.argv[1:]] or [1024, 4096]

torch.manual_seed(0)
with torch.device("cuda"):
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
model.eval()

rows = []
for T in tokens_list:
    ids = torch.tensor([[(i * 7919) % cfg.vocab_size for i in range(T)]], device="cuda")
    with torch.inference_mode():
        model(ids, use_cache=False)  # warm-up: kernels, autotuning
        times = []
        for _ in range(5):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(ids, use_cache=False)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
    ms = statistics.median(times)
    rows.append({"tokens": T, "ms": ms, "min": min(times), "max": max(times), "tokens_per_s": T / ms * 1e3})
    print(json.dumps(rows[-1]), flush=True)

out = {
    "what": "transformers DeepseekV2ForCausalLM, random bf16 weights, sdpa, prefill wall clock (CUDA-synchronized), median of 5",
    "card": torch.cuda.get_device_name(0), "torch": torch.__version__, "transformers": transformers.__version__,
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "prefill": rows,
}
path = os.path.join(os.environ.get("BENCH_OUT", here), "pytorch-prefill.json")
with open(path, "w") as f:
    json.dump(out, f, indent=2)
print(f"wrote {path}")
