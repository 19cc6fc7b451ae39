// Selection of a few tokens' experts then their grouping, in one workgroup: route-select.wgsl's route_token for
// each token in turn (its ids / weights made visible to the whole workgroup before the next step), then
// group.wgsl's group_assignments over them. The outputs are those of the select and group dispatches, bit for bit.
// route-fused.wgsl ends with it; moeSelectGroup's entry point is only this.
//
// The includer declares route-select.wgsl's and group.wgsl's bindings (logits, ids, weights, groups, [bias]) and
// uniforms (tokens, scale, assignments, tile_base, sorted_base) and their constants, then both files before this.

fn select_and_group(lid: u32) {
  for (var t = 0u; t < u.tokens; t++) {
    route_token(t, lid);
    storageBarrier();
    workgroupBarrier();
  }
  group_assignments(lid);
}
