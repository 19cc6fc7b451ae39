#!/usr/bin/env bash
# Same-call A/B of two builds on the GPU machine: its cards differ by a few percent from one start to the next, so a
# change is only measured against its base in one device call, the two builds alternating.
#   here:   bash bench/gpu/ab.sh pack <base-commit>    the working tree's dists → .gpu/ab-cand.tgz, <base-commit>'s
#                                                      (built in a temporary worktree) → .gpu/ab-base.tgz
#           bash ../shared/gpu/pack.sh (as for any GPU call), then carry [".gpu"]
#   there:  source .gpu/env.sh; bash bench/gpu/ab.sh run [rounds] -- <command...>
#           runs the command with base's dists, then cand's, `rounds` times (default 2), each run headed "### base|cand
#           round N", and leaves cand's dists in place
set -euo pipefail
root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
cd "$root"
# the workspaces whose build outputs differ between two commits of the decode and prefill paths
DISTS=(shared/protocol/dist shared/model/dist shared/gpu/dist decode-node/dist prefill-node/dist bench/dist)

case "${1:-}" in
  pack)
    base=${2:?usage: ab.sh pack <base-commit>}
    git rev-parse --verify --quiet "$base^{commit}" > /dev/null || { echo "ab.sh: $base is not a commit" >&2; exit 2; }
    mkdir -p .gpu
    tar czf .gpu/ab-cand.tgz "${DISTS[@]}"
    tree=$(mktemp -d)
    trap 'git worktree remove --force "$tree" > /dev/null 2>&1 || true; rm -rf "$tree"' EXIT
    git worktree add --detach "$tree" "$base" > /dev/null
    # node_modules as hard links: its workspace links are relative, so they point into the worktree
    cp -al node_modules "$tree/node_modules"
    (cd "$tree" && npm run build > "$tree/build.log" 2>&1) || { tail -20 "$tree/build.log" >&2; exit 1; }
    (cd "$tree" && tar czf "$root/.gpu/ab-base.tgz" "${DISTS[@]}")
    echo "packed .gpu/ab-base.tgz ($(git rev-parse --short "$base")) and .gpu/ab-cand.tgz (the working tree)"
    ;;
  run)
    shift
    rounds=2
    if [[ "${1:-}" =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
    [[ "${1:-}" == "--" ]] && shift
    (($# > 0)) || { echo "usage: ab.sh run [rounds] -- <command...>" >&2; exit 2; }
    for f in .gpu/ab-base.tgz .gpu/ab-cand.tgz; do [[ -f $f ]] || { echo "ab.sh: $f missing (run ab.sh pack here first)" >&2; exit 2; }; done
    for ((r = 1; r <= rounds; r++)); do
      for which in base cand; do
        rm -rf "${DISTS[@]}"
        tar xzf ".gpu/ab-$which.tgz"
        echo "### $which round $r"
        "$@" || echo "### $which round $r: exit $?"
      done
    done
    ;;
  *)
    echo "usage: ab.sh pack <base-commit> | ab.sh run [rounds] -- <command...>" >&2
    exit 2
    ;;
esac
