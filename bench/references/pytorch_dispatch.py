"""The peer of bench/dispatch.ts, in the same GPU-machine call: what one kernel costs under CUDA, the floor under
a decode step of small kernels there. Chains of N launches of one tiny elementwise kernel (`x.mul_(0.5)`: one
read and one write a thread, as the WGSL bench's `touch`; each waits for the one before on the stream) over a
tensor of one 256-thread block and over 8 blocks an SM, timed two ways, as the WGSL bench:
  - launched one by one (eager PyTorch);
  - replayed from a CUDA graph (how SGLang and vLLM run a decode step);
by CUDA events around the chain (GPU time) and by the wall clock around launch + synchronize. Per kernel = the
slope between N = 1 and the longest chain, from the medians of 7 runs. Writes $BENCH_OUT/pytorch-dispatch.json.
    python3 bench/references/pytorch_dispatch.py [N ...]      (default 1 64 256 1024)
"""
import json, os, statistics, sys, time

import torch

here = os.path.dirname(os.path.abspath(__file__))
lengths = sorted(set(int(n) for n in sys.argv[1:])) or [1, 64, 256, 1024]
RUNS = 7
sms = torch.cuda.get_device_properties(0).multi_processor_count


def timed(fn):
    """GPU ms (CUDA events) and wall ms (launch to synchronize) of fn(), median with min-max over RUNS after 2 warm-ups."""
    gpu, wall = [], []
    for r in range(RUNS + 2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        if r >= 2:
            wall.append((time.perf_counter() - t0) * 1e3)
            gpu.append(start.elapsed_time(end))
    return gpu, wall


rows = []
for mode in ["eager", "cuda graph"]:
    for blocks in [1, sms * 8]:
        x = torch.ones(blocks * 256, device="cuda")
        medians = []
        per_length = []
        for n in lengths:
            def chain():
                for _ in range(n):
                    x.mul_(0.5)
            if mode == "cuda graph":
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    chain()  # warm-up outside the capture
                torch.cuda.current_stream().wait_stream(s)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    chain()
                run = graph.replay
            else:
                run = chain
            gpu, wall = timed(run)
            medians.append((statistics.median(gpu), statistics.median(wall)))
            per_length.append({
                "launch": mode, "blocks": blocks, "kernels": n,
                "gpu_us": statistics.median(gpu) * 1e3, "gpu_min_max_us": [min(gpu) * 1e3, max(gpu) * 1e3],
                "wall_us": statistics.median(wall) * 1e3, "wall_min_max_us": [min(wall) * 1e3, max(wall) * 1e3],
            })
        span = lengths[-1] - lengths[0]
        gpu_per = (medians[-1][0] - medians[0][0]) / span * 1e3
        wall_per = (medians[-1][1] - medians[0][1]) / span * 1e3
        for row in per_length:
            rows.append({**row, "gpu_us_per_kernel": gpu_per, "wall_us_per_kernel": wall_per})
        print(json.dumps(per_length[-1]), f"GPU {gpu_per:.2f} us, wall {wall_per:.2f} us a kernel", flush=True)

out = {
    "what": "chains of one tiny elementwise CUDA kernel (x.mul_), eager launches and CUDA-graph replays; GPU time by CUDA events, wall by launch-to-synchronize; median of 7",
    "card": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "rows": rows,
}
path = os.path.join(os.environ.get("BENCH_OUT", here), "pytorch-dispatch.json")
with open(path, "w") as f:
    json.dump(out, f, indent=2)
print(f"wrote {path}")
