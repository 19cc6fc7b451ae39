// Token -> expert grouping, entirely on the GPU (one workgroup): counts the (token, slot) assignments of each
// expert, prefix-sums them into per-expert ranges of a sorted assignment list, cuts every expert's range into
// row tiles of TM for the expert GEMMs, and scatters each assignment index a = t·K + j into its expert's range.
// The order of assignments inside one expert's range depends on atomics (not deterministic), but every row is
// computed independently of its position, so results are bitwise reproducible.
//
// Bindings, in order (numbered by the launcher):
//   ids:  array<u32>, read        [assignments] expert of assignment a (topkIds flattened)
//   groups: array<u32>, read_write  layout (u32 elements):
//       [0, EG]                     expert_offsets: expert e owns sorted rows [groups[e], groups[e + 1])
//       [EG + 1, 2EG + 1]           tile_offsets:   expert e owns tiles [groups[EG+1+e], groups[EG+2+e])
//       [tile_base, +2·max_tiles)   tiles: (expert, first sorted row) pairs
//       [sorted_base, +assignments) sorted: assignment index a at each sorted row
//   u: uniforms { assignments, tile_base, sorted_base }
// The scan of the counts is the launcher's (groupWgsl): Hillis-Steele through workgroup memory, or, where every
// subgroup is GROUP_SG invocations wide, subgroupInclusiveAdd within subgroups and their totals added after (2
// barriers instead of 2·log2(EG); integer sums, so the same result).
// Compile-time constants (prelude): EG (experts grouped: the routed ones and any shared ones routed with them,
// named apart from route-select.wgsl's E, the routed ones, for the kernels that include both), TM (rows per tile),
// WG (threads).

// The launcher declares the bindings and the entry point (which calls group_assignments), so select-group.wgsl
// can run it over its own bindings (in the select+group and route-fused kernels).

var<workgroup> cnt: array<atomic<u32>, EG>;
var<workgroup> start: array<u32, EG>;
var<workgroup> tstart: array<u32, EG>;

fn group_assignments(lid: u32) {
  for (var e = lid; e < EG; e += WG) { atomicStore(&cnt[e], 0u); }
  workgroupBarrier();
  for (var a = lid; a < u.assignments; a += WG) {
    let e = ids[a];
    if (e < EG) { atomicAdd(&cnt[e], 1u); }
  }
  workgroupBarrier();
  // exclusive prefix sums of the row counts (start) and of the tile counts (tstart)
  if (EG <= WG) {
    // inclusive scan, one expert per thread (c, incl, tincl: the launcher's SCAN, by subgroups or Hillis-Steele)
    /*@SCAN@*/
    if (lid < EG) {
      start[lid] = incl - c;
      tstart[lid] = tincl - (c + TM - 1u) / TM;
      groups[lid] = incl - c;
      groups[EG + 1u + lid] = tincl - (c + TM - 1u) / TM;
      if (lid == EG - 1u) { groups[EG] = incl; groups[2u * EG + 1u] = tincl; }
    }
  } else {
    if (lid == 0u) {
      var off = 0u;
      var toff = 0u;
      for (var e = 0u; e < EG; e++) {
        let c = atomicLoad(&cnt[e]);
        start[e] = off;
        tstart[e] = toff;
        groups[e] = off;
        groups[EG + 1u + e] = toff;
        off += c;
        toff += (c + TM - 1u) / TM;
      }
      groups[EG] = off;
      groups[2u * EG + 1u] = toff;
    }
  }
  workgroupBarrier();
  for (var e = lid; e < EG; e += WG) {
    let c = atomicLoad(&cnt[e]);
    let n = (c + TM - 1u) / TM;
    for (var i = 0u; i < n; i++) {
      let tile = tstart[e] + i;
      groups[u.tile_base + 2u * tile] = e;
      groups[u.tile_base + 2u * tile + 1u] = start[e] + i * TM;
    }
    atomicStore(&cnt[e], start[e]);
  }
  workgroupBarrier();
  for (var a = lid; a < u.assignments; a += WG) {
    let e = ids[a];
    if (e < EG) {
      let p = atomicAdd(&cnt[e], 1u);
      groups[u.sorted_base + p] = a;
    }
  }
}
