#!/usr/bin/env bash
# The GPU machine's runs, in one device call (its time is counted): each step named on the command line runs
# under its own time limit, and its log (and result JSON) lands in $OUT. On the device machine, after pack.sh:
#   source .gpu/env.sh; BENCH_COMMIT=<commit> bash bench/gpu/suite.sh mma-tests matmul prefill decode transfer
# Steps: mma-tests (the tensor-core tests: matmul-mma, MoE experts, grouped decode attention, head matmul, prefill attention;
# the tiny checkpoint end to end on tensor cores against transformers; prefill-attention-test runs the
# prefill attention's alone), matmul (f32 vs subgroup-matrix
# GEMM tiles at prefill shapes), matmul-x16 (f16 against f32 activations on the prefill tiles), matmul-decode (the subgroup-matrix tiles at V2-Lite's decode-batch projections), prefill (f32 and subgroup-matrix matmuls), decode (both attention kernels),
# pytorch (transformers' prefill of the same shapes, the peer), prefill-profile (per-kernel GPU times), decode-profile (the same for
# decode steps), decode-kernels (the batch-1 step's one-workgroup kernels alone), decode-encode (a step's CPU side with and without the recorded forward), decode-attention (the kernel grid),
# moe (the routed experts of one layer per GEMM form at decode batches), moe-prefill (their prefill forms at 4096 tokens), moe-residency (the experts' decode
# kernels' time by workgroups launched: how many run at once), mma-peak (the subgroup-matrix product rate alone:
# the tensor-core kernels' ceiling), dispatch (the cost of one dispatch, and
# of one CUDA kernel launched or replayed from a graph: the peer),
# experts-probes (read-patterns' slab and tile patterns at 64 and 768 MiB, bench/moe-tiled-direct),
# sample-spread (the samplers alone in decode-kernels, decode steps sampling top-k 50 + top-p 0.9 with the spread sampler and with one workgroup a row, the sampler tests on the card),
# split-k (decode steps with split-K, the router GEMM and the GEMVs' staged input off and on; moe-residency),
# decode-new (split-k's first and last decode configs, the latter profiled per kernel, and moe-residency),
# split-k-more (the merge dispatch at batch 1, 8 KV splits at batch 1, the split GEMMs alone and their tensor-core tests, the experts' gate/up split, mma-peak),
# head-groups (decode attention at 128 heads, head groups of 16 and 32), ablate (decode attention with one part of the
# tensor-core kernel taken out at a time: what bounds it), splits-16h (decode attention at 16 heads by split count),
# occupancy (256-invocation workgroups a multiprocessor runs at once, by workgroup memory and by live registers), attn-residency (decode attention's time by workgroups launched: how many run at once), tile16 (decode attention with 16-token tiles against 32, at the split policy's count and at 2 and 4 splits; its tests), tile16-2x (16-token tiles against 32 at twice the policy's workgroups, 16 heads), robustness (Dawn's bounds clamps on and off:
# decode attention, decode steps, prefill, mma-peak), grouped-order (GEMM blocks and expert tiles in groups of rows: tests, GEMMs, experts), grouped-prefill (prefill with
# them off and on), results (decode attention, decode, prefill, transformers and the decode profile for the current build; results-decode and results-prefill are its two halves, one device call each),
# startup (a prefill and a decode node's compile and warm-up at V2-Lite shapes, and their first requests after it),
# long-prompt (the MLPs whole against in chunks, compileAll's limit, prompts around the chunk boundaries and the limit),
# transfer (needs pack.sh --servers).
# DAWN_FEATURES defaults to allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness (as served on NVIDIA).
set -uo pipefail
out=${OUT:-/tmp/gpu-suite}
mkdir -p "$out"
export BENCH_OUT="$out" BENCH_DRIVER="${BENCH_DRIVER:-$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null)}"
export BENCH_CARD="${BENCH_CARD:-$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)}"
export DAWN_FEATURES=${DAWN_FEATURES:-allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness}
ava=$PWD/node_modules/ava/entrypoints/cli.mjs
step() { # name, limit in seconds, command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  echo "== $name: exit $? after $((SECONDS - t0)) s"; tail -n 40 "$out/$name.log"
}
# one decode bench run at batches 1 and 64, 1K context, per "split-K max/router GEMM min tokens/staged GEMV input/fused-merge max splits"
decode_config() {
  local sk rt st fm
  IFS=/ read -r sk rt st fm <<< "$1"
  MATMUL_SPLIT_K_MAX=$sk MOE_ROUTER_GEMM_MIN_TOKENS=$rt GEMV_STAGE_INPUT=$st BENCH_FUSED_MERGE_MAX_SPLITS=$fm BENCH_ATTENTION=subgroup-matrix \
    BENCH_DTYPES=fp8_e4m3 BENCH_CONTEXTS=1024 BENCH_BATCHES=1,64 BENCH_ITERS=5 step "decode-$sk-$rt-$st-$fm" 110 node bench/dist/decode.js
  [ -f "$out/decode.json" ] && mv "$out/decode.json" "$out/decode-$sk-$rt-$st-$fm.json"
}
for s in "$@"; do
  case $s in
    mma-tests)
      step matmul-mma-test 240 bash -c "cd shared/gpu && node $ava dist/test/kernels/matmul-mma.test.js --verbose"
      step moe-mma-test 300 bash -c "cd shared/gpu && node $ava dist/test/kernels/moe.test.js --verbose"
      step decode-attention-mma-test 240 bash -c "cd decode-node && node $ava dist/test/kernels/grouped-decode-attention-mma.test.js --verbose"
      step head-matmul-mma-test 180 bash -c "cd decode-node && node $ava dist/test/kernels/head-matmul-mma.test.js --verbose"
      step prefill-attention-mma-test 240 bash -c "cd shared/gpu && node $ava dist/test/kernels/mla-prefill-attention-mma.test.js --verbose"
      step fixture-mma-test 240 bash -c "cd decode-node && node $ava dist/test/engine/fixture-mma.test.js --verbose" ;;
    prefill-attention-test)
      step prefill-attention-mma-test 240 bash -c "cd shared/gpu && node $ava dist/test/kernels/mla-prefill-attention-mma.test.js --verbose" ;;
    matmul)
      BENCH_NAME=matmul step matmul 240 node bench/dist/matmul.js 4096x2048x2048,4096x3072x2048,4096x10944x2048,4096x576x2048,4096x4096x512,64x2048x2048,64x102400x2048 \
        '[{"variant":"gemm"},{"variant":"gemm-mma","mmaTile":"m128x128"},{"variant":"gemm-mma","mmaTile":"m128x128k16"},{"variant":"gemm-mma","mmaTile":"m64x64"}]' ;;
    matmul-x16)
      # f16 against f32 activations on the prefill tiles (staging bytes halved: mma-peak's staging rows; 64-deep slabs: half the
      # barriers a product), then their tests
      BENCH_NAME=matmul-x16 step matmul-x16 200 node bench/dist/matmul.js 4096x2048x2048,4096x10944x2048,4096x3072x2048,2048x2048x10944,4096x2048x1408 \
        '[{"variant":"gemm-mma","mmaTile":"m128x128"},{"variant":"gemm-mma","mmaTile":"m128x128","xDtype":"f16"},{"variant":"gemm-mma","mmaTile":"m128x256"},{"variant":"gemm-mma","mmaTile":"m128x256","xDtype":"f16"},{"variant":"gemm-mma","mmaTile":"m128x128k64"},{"variant":"gemm-mma","mmaTile":"m128x128k64","xDtype":"f16"}]'
      step matmul-x16-test 150 bash -c "cd shared/gpu && node $ava dist/test/kernels/matmul-mma.test.js --match '*f16 activations*' --verbose" ;;
    matmul-decode)
      # V2-Lite's projections at decode batches (q, kv_a, o, shared gate ‖ up, shared down), every 64- and 32-wide tile
      BENCH_NAME=matmul-decode step matmul-decode 300 node bench/dist/matmul.js 16x3072x2048,16x576x2048,16x2048x2048,16x2816x2048,16x2048x1408,64x3072x2048,64x576x2048,64x2048x2048,64x2816x2048,64x2048x1408 \
        '[{"variant":"gemm-mma","mmaTile":"m64x64k128"},{"variant":"gemm-mma","mmaTile":"m64x32k128"},{"variant":"gemm-mma","mmaTile":"m32x64k128"},{"variant":"gemm-mma","mmaTile":"m32x32k128"},{"variant":"gemm-mma","mmaTile":"m64x64"}]' ;;
    prefill)
      BENCH_TOKENS=${BENCH_TOKENS:-1024,4096} MATMUL_ENGINE=f32 step prefill-f32 300 node bench/dist/prefill.js
      BENCH_TOKENS=${BENCH_TOKENS:-1024,4096} step prefill-subgroup-matrix 300 node bench/dist/prefill.js ;;
    pytorch)
      step pytorch-prefill 300 python3 bench/references/pytorch_prefill.py 1024 4096 ;;
    prefill-profile)
      BENCH_TOKENS=4096 GPU_PROFILE=1 step prefill-profile 300 node bench/dist/prefill.js ;;
    decode)
      BENCH_DTYPES=fp8_e4m3 step decode 420 node bench/dist/decode.js ;;
    decode-profile)
      # unrounded timestamps (Dawn rounds them to 65.5 µs unless told otherwise)
      DAWN_DISABLED_FEATURES=timestamp_quantization BENCH_DTYPES=fp8_e4m3 BENCH_CONTEXTS=1024 BENCH_BATCHES=1,64 BENCH_ITERS=5 GPU_PROFILE=1 step decode-profile 300 node bench/dist/decode.js ;;
    decode-kernels)
      DAWN_DISABLED_FEATURES=timestamp_quantization step decode-kernels 200 node bench/dist/decode-kernels.js ;;
    decode-encode)
      BENCH_DTYPES=fp8_e4m3 step decode-encode 300 node bench/dist/decode-encode.js ;;
    decode-attention)
      step decode-attention 420 node bench/dist/decode-attention.js ;;
    moe)
      step moe 300 node bench/dist/moe.js ;;
    moe-prefill)
      # the experts' prefill forms at 4096 V2-Lite tokens (64-row, 128-row, 128-row with down columns first and f16 act), then their tests
      BENCH_BATCHES=4096 BENCH_MOE_VARIANTS=mma,mma128,mma128cf step moe-prefill 150 node bench/dist/moe.js
      step moe-prefill-test 150 bash -c "cd shared/gpu && node $ava dist/test/kernels/moe.test.js --match '*mma128*' --match '*skewed*' --verbose" ;;
    mma-peak)
      step mma-peak 120 node bench/dist/mma-peak.js ;;
    moe-residency)
      step moe-residency 180 node bench/dist/moe-residency.js ;;
    experts-probes)
      # what bounds the routed experts: their slab reads alone, 512-byte tiles into subgroup matrices, pre-tiled direct gate/up
      BENCH_SIZES_MB=64,768 BENCH_READ_PATTERNS=slabs step read-patterns-slabs 200 node bench/dist/read-patterns.js
      [ -f "$out/read-patterns.json" ] && mv "$out/read-patterns.json" "$out/read-patterns-slabs.json"
      BENCH_SIZES_MB=64,768 BENCH_READ_PATTERNS=tiles step read-patterns-tiles 200 node bench/dist/read-patterns.js
      [ -f "$out/read-patterns.json" ] && mv "$out/read-patterns.json" "$out/read-patterns-tiles.json"
      BENCH_DIRECT_U=4,8,2p,4p,8p step moe-tiled-direct 200 node bench/dist/moe-tiled-direct.js ;;
    dispatch)
      step dispatch 120 node bench/dist/dispatch.js
      step pytorch-dispatch 120 python3 bench/references/pytorch_dispatch.py ;;
    sample-spread)
      DAWN_DISABLED_FEATURES=timestamp_quantization step decode-kernels 200 node bench/dist/decode-kernels.js
      for r in 1 2; do for s in 1 0; do
        BENCH_SAMPLING=top-k-p BENCH_SAMPLE_SPREAD=$s BENCH_ATTENTION=subgroup-matrix BENCH_DTYPES=fp8_e4m3 BENCH_CONTEXTS=1024 BENCH_BATCHES=1,64 BENCH_ITERS=10 \
          step "decode-topkp-spread$s-r$r" 110 node bench/dist/decode.js
        [ -f "$out/decode.json" ] && mv "$out/decode.json" "$out/decode-topkp-spread$s-r$r.json"
      done; done
      step sample-test 200 bash -c "cd shared/gpu && node $ava dist/test/kernels/sample.test.js --verbose" ;;
    split-k)
      # whole decode steps per MATMUL_SPLIT_K_MAX / MOE_ROUTER_GEMM_MIN_TOKENS / GEMV_STAGE_INPUT / BENCH_FUSED_MERGE_MAX_SPLITS
      # (the first config is the earlier behaviour of all four), then how many expert workgroups run at once
      for cfg in 1/2048/false/64 1/2048/true/64 8/2048/true/64 8/9/true/64; do decode_config "$cfg"; done
      step moe-residency 120 node bench/dist/moe-residency.js ;;
    decode-new)
      # the short form of split-k: decode steps before and with every new setting, a per-kernel profile of the latter, residency
      decode_config 1/2048/false/64
      decode_config 8/9/true/64
      MATMUL_SPLIT_K_MAX=8 MOE_ROUTER_GEMM_MIN_TOKENS=9 BENCH_ATTENTION=subgroup-matrix BENCH_DTYPES=fp8_e4m3 BENCH_CONTEXTS=1024 \
        BENCH_BATCHES=1,64 BENCH_ITERS=5 GPU_PROFILE=1 step decode-profile 110 node bench/dist/decode.js
      step moe-residency 100 node bench/dist/moe-residency.js ;;
    split-k-more)
      # the merge as its own dispatch at batch 1 (16 splits, past 8), the split GEMMs alone, their tensor-core tests, the experts' gate/up split,
      # the tensor cores' product rate
      decode_config 1/2048/true/8
      BENCH_KV_SPLITS=8 BENCH_BATCHES=1 BENCH_ATTENTION=subgroup-matrix BENCH_DTYPES=fp8_e4m3 BENCH_CONTEXTS=1024 BENCH_ITERS=5 \
        step decode-kv8-b1 90 node bench/dist/decode.js
      [ -f "$out/decode.json" ] && mv "$out/decode.json" "$out/decode-kv8-b1.json"
      BENCH_NAME=matmul-split step matmul-split 90 node bench/dist/matmul.js 64x3072x2048,64x576x2048,64x2048x2048,64x5632x2048,64x2048x2816,1x3648x2048 \
        '[{},{"splits":2},{"splits":4},{"splits":8},{"variant":"gemm","splits":8}]'
      step split-mma-tests 150 bash -c "cd shared/gpu && node $ava dist/test/kernels/matmul-mma.test.js dist/test/kernels/moe.test.js --match '*m128x128s2*' --match '*split*' --verbose"
      BENCH_BATCHES=1,4 BENCH_MOE_VARIANTS=mma16n64 BENCH_GATE_UP_SPLITS=1,2,4,8 step moe-split 90 node bench/dist/moe.js
      step mma-peak 60 node bench/dist/mma-peak.js
      BENCH_ATTENTION=subgroup-matrix BENCH_DTYPES=fp8_e4m3 BENCH_CONTEXTS=1024 BENCH_BATCHES=1,64 BENCH_ITERS=5 GPU_PROFILE=1 \
        step decode-profile 110 node bench/dist/decode.js ;;
    head-groups)
      # the subgroup-matrix decode attention at 128 heads with head groups of 16 (one row tile) and 32 (two), same caches
      BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2 BENCH_BATCHES=32,128 BENCH_CONTEXTS=4096 BENCH_DTYPES=fp8_e4m3,bf16 BENCH_HEAD_GROUPS=16,32 \
        BENCH_RUNS=5 BENCH_NAME=decode-attention-head-group step decode-attention-head-group 150 node bench/dist/decode-attention.js ;;
    ablate)
      # the subgroup-matrix decode attention with one part taken out at a time (BENCH_ABLATE: what bounds it), at the
      # issue's two V2-Lite rows (every dtype) and V2's 128 heads at batch 32 4K
      for bc in 128/16384 32/4096; do
        BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2-lite BENCH_BATCHES=${bc%/*} BENCH_CONTEXTS=${bc#*/} BENCH_DTYPES=bf16,fp8_e4m3,fp8_e5m2 \
          BENCH_ABLATE=decode,store,fetch,scores,pv BENCH_RUNS=5 BENCH_NAME=decode-attention-ablate-16h-b${bc%/*} step decode-attention-ablate-16h-b${bc%/*} 150 node bench/dist/decode-attention.js
      done
      BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2 BENCH_BATCHES=32 BENCH_CONTEXTS=4096 BENCH_DTYPES=bf16,fp8_e4m3 \
        BENCH_ABLATE=decode,store,fetch,scores,pv BENCH_RUNS=5 BENCH_NAME=decode-attention-ablate-128h step decode-attention-ablate-128h 120 node bench/dist/decode-attention.js ;;
    tile16)
      # the subgroup-matrix decode attention with 16- and 32-token tiles (16: 60% of the workgroup memory and fewer
      # registers, so more workgroups a multiprocessor), same caches, at the split policy's count and at 2 and 4
      # splits a sequence (more workgroups than one a multiprocessor: do they run at once?), then its tests
      for n in policy 2 4; do
        sp=; [ $n != policy ] && sp=$n
        SPLITS=$sp BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2-lite BENCH_BATCHES=32,128 BENCH_CONTEXTS=4096,16384 BENCH_DTYPES=bf16,fp8_e4m3,fp8_e5m2 \
          BENCH_TILE_TOKENS=32,16 BENCH_RUNS=5 BENCH_NAME=decode-attention-tile16-16h-s$n step decode-attention-tile16-16h-s$n 120 node bench/dist/decode-attention.js
      done
      BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2 BENCH_BATCHES=1,32,128 BENCH_CONTEXTS=4096 BENCH_DTYPES=fp8_e4m3,bf16 \
        BENCH_TILE_TOKENS=32,16 BENCH_RUNS=5 BENCH_NAME=decode-attention-tile16-128h step decode-attention-tile16-128h 120 node bench/dist/decode-attention.js
      step decode-attention-mma-test 240 bash -c "cd decode-node && node $ava dist/test/kernels/grouped-decode-attention-mma.test.js --verbose" ;;
    occupancy)
      # 256-invocation workgroups a multiprocessor runs at once by workgroup memory and by live registers
      step occupancy 150 node bench/dist/occupancy.js ;;
    attn-residency)
      # how many decode-attention workgroups a multiprocessor runs at once: one split a sequence, 16 heads (one
      # workgroup a sequence), 512 tokens each, batches around multiples of the SM count (132 on the H100 and H200):
      # the time steps up past each multiple of what runs at once; 32- and 16-token tiles
      SPLITS=1 BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2-lite BENCH_BATCHES=66,132,133,198,264,265,396,397 BENCH_CONTEXTS=512 BENCH_DTYPES=fp8_e4m3 \
        BENCH_TILE_TOKENS=32,16 BENCH_RUNS=5 BENCH_NAME=decode-attention-residency step decode-attention-residency 150 node bench/dist/decode-attention.js ;;
    tile16-2x)
      # 16-token tiles (23 KiB: two workgroups a multiprocessor) against 32 with twice the policy's workgroups (batch 32:
      # 8 splits, batch 128: 2), every dtype, 16 heads
      for bs in 32/8 128/2; do
        SPLITS=${bs#*/} BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2-lite BENCH_BATCHES=${bs%/*} BENCH_CONTEXTS=4096,16384 BENCH_DTYPES=bf16,fp8_e4m3,fp8_e5m2 \
          BENCH_TILE_TOKENS=32,16 BENCH_RUNS=5 BENCH_NAME=decode-attention-tile16-2x-b${bs%/*} step decode-attention-tile16-2x-b${bs%/*} 120 node bench/dist/decode-attention.js
      done ;;
    splits-16h)
      # the subgroup-matrix decode attention at V2-Lite's 16 heads with 1..16 splits a sequence (the policy's choice
      # fills one workgroup a multiprocessor)
      for n in 1 2 4 8 16; do
        BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2-lite BENCH_BATCHES=32,128 BENCH_CONTEXTS=4096,16384 BENCH_DTYPES=bf16,fp8_e4m3,fp8_e5m2 \
          SPLITS=$n BENCH_RUNS=5 BENCH_NAME=decode-attention-splits-$n step decode-attention-splits-$n 100 node bench/dist/decode-attention.js
      done ;;
    robustness)
      # Dawn's bounds clamps on (the default toggles) against off (disable_robustness), alternating in one call: the
      # decode attention at V2-Lite batch 32 4K, decode steps, prefill 4096, the tensor cores' product and staging rates
      for clamps in on off; do
        tg=allow_unsafe_apis,vulkan_enable_f16_on_nvidia; [ $clamps = off ] && tg=$tg,disable_robustness
        DAWN_FEATURES=$tg BENCH_ENGINES=subgroup-matrix BENCH_MODELS=v2-lite BENCH_BATCHES=32 BENCH_CONTEXTS=4096 BENCH_DTYPES=fp8_e4m3,bf16 \
          BENCH_RUNS=5 BENCH_NAME=decode-attention-clamps-$clamps step decode-attention-clamps-$clamps 90 node bench/dist/decode-attention.js
        DAWN_FEATURES=$tg BENCH_ATTENTION=subgroup-matrix BENCH_DTYPES=fp8_e4m3 BENCH_CONTEXTS=1024 BENCH_BATCHES=1,64 \
          step decode-clamps-$clamps 100 node bench/dist/decode.js
        [ -f "$out/decode.json" ] && mv "$out/decode.json" "$out/decode-clamps-$clamps.json"
        DAWN_FEATURES=$tg BENCH_TOKENS=4096 step prefill-clamps-$clamps 100 node bench/dist/prefill.js
        DAWN_FEATURES=$tg step mma-peak-clamps-$clamps 60 node bench/dist/mma-peak.js
      done ;;
    grouped-order)
      # the GEMM's blocks and the experts' tiles in grouped order (groups of a few rows of blocks / tiles, down then
      # across) against x fastest: its GPU tests, the prefill GEMM shapes by group size, the experts at 4096 tokens
      step grouped-order-test 200 bash -c "cd shared/gpu && node $ava dist/test/kernels/matmul-mma.test.js dist/test/kernels/moe.test.js --match '*grouped order*' --verbose"
      BENCH_NAME=matmul-grouped step matmul-grouped 300 node bench/dist/matmul.js 4096x10944x2048,4096x3072x2048,4096x2816x2048,4096x2048x2048,4096x2048x10944,4096x4096x512 \
        '[{"variant":"gemm-mma","mmaTile":"m128x256","groupRows":0},{"variant":"gemm-mma","mmaTile":"m128x256","groupRows":4},{"variant":"gemm-mma","mmaTile":"m128x256","groupRows":8},{"variant":"gemm-mma","mmaTile":"m128x256","groupRows":16},{"variant":"gemm-mma","mmaTile":"m128x128","groupRows":0},{"variant":"gemm-mma","mmaTile":"m128x128","groupRows":8},{"variant":"gemm-mma","mmaTile":"m128x256","groupRows":0,"dtype":"f16"},{"variant":"gemm-mma","mmaTile":"m128x256","groupRows":8,"dtype":"f16"}]'
      BENCH_BATCHES=4096 BENCH_MOE_VARIANTS=mma128 BENCH_MOE_GROUP_TILES=0,4,8,16 step moe-grouped 200 node bench/dist/moe.js
      # the same weights held as f16 (the staging a copy, no bf16 conversion)
      BENCH_BATCHES=4096 BENCH_MOE_VARIANTS=mma128 BENCH_MOE_GROUP_TILES=0,8 BENCH_EXPERT_DTYPE=f16 step moe-grouped-f16 200 node bench/dist/moe.js ;;
    grouped-prefill)
      # prefill of 4096 V2-Lite tokens with the GEMMs' and the experts' grouped order off and on (GROUPED="rows/tiles",
      # default 8/8), alternating GROUPED_ROUNDS times (default 2)
      for r in $(seq 1 "${GROUPED_ROUNDS:-2}"); do
        for g in 0/0 ${GROUPED:-8/8}; do
          MATMUL_GROUP_ROWS=${g%/*} MOE_GROUP_TILES=${g#*/} BENCH_TOKENS=4096 step prefill-grouped-${g%/*}-${g#*/}-$r 120 node bench/dist/prefill.js
          [ -f "$out/prefill-subgroup-matrix.json" ] && mv "$out/prefill-subgroup-matrix.json" "$out/prefill-grouped-${g%/*}-${g#*/}-$r.json"
        done
      done ;;
    results|results-decode|results-prefill)
      # the issue's result set for the current build: decode attention (tensor-core kernel; the portable rows change rarely,
      # the plot takes them from an earlier file) and decode steps (results-decode), then prefill, transformers' prefill and
      # the decode profile (results-prefill); results runs both, which can pass one device call's 10 minutes
      if [ "$s" != results-prefill ]; then
        BENCH_ENGINES=subgroup-matrix step decode-attention 200 node bench/dist/decode-attention.js
        BENCH_ATTENTION=subgroup-matrix BENCH_DTYPES=fp8_e4m3 step decode 150 node bench/dist/decode.js
        [ -f "$out/decode.json" ] && mv "$out/decode.json" "$out/decode-steps.json"   # the profile's run writes decode.json too
      fi
      [ "$s" = results-decode ] && continue
      BENCH_TOKENS=1024,4096 step prefill-subgroup-matrix 90 node bench/dist/prefill.js
      step pytorch-prefill 90 python3 bench/references/pytorch_prefill.py 1024 4096
      DAWN_DISABLED_FEATURES=timestamp_quantization BENCH_ATTENTION=subgroup-matrix BENCH_DTYPES=fp8_e4m3 BENCH_CONTEXTS=1024 BENCH_BATCHES=1,64 BENCH_ITERS=5 GPU_PROFILE=1 \
        step decode-profile 70 node bench/dist/decode.js ;;
    startup)
      step startup 400 node bench/dist/startup.js ;;
    long-prompt)
      step long-prompt 400 node bench/dist/long-prompt.js ;;
    transfer)
      step transfer 300 node bench/dist/transfer.js ;;
    *) echo "unknown step $s"; exit 2 ;;
  esac
done
# the device tool brings back at most 8 files of $OUT: everything also goes in one archive (its name sorts first)
(cd "$out" && rm -f all.tgz && shopt -s nullglob && files=(*) && [ ${#files[@]} -gt 0 ] && tar czf all.tgz -- "${files[@]}" \
  && echo "== $out/all.tgz holds every log and result")
exit 0
