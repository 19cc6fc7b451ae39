// Draws bench/results/decode-attention.<card>.json as an SVG: time vs context (log-log) for 16 and 128 heads,
// one panel each, lines for our portable kernel, our subgroup-matrix kernel and SGLang's Triton kernel, at one
// batch and cache dtype; with a second (earlier) result file, its subgroup-matrix rows as "before" and its portable
// rows where the first file has none. Convert to PNG with any SVG renderer (ImageMagick: convert in.svg out.png).
//   node bench/dist/plot-decode-attention.js bench/results/decode-attention.h200.json out.svg [batch=32] [dtype=fp8_e4m3] [note] [before.json]
import { readFileSync, writeFileSync } from 'node:fs';

interface Row { heads: number; batch: number; context: number; dtype: string; engine: string; ms: number; 'sglang ms': number; 'rel err': number }

const [file, out, batchArg, dtypeArg, note, beforeFile] = process.argv.slice(2);
if (!file || !out) throw new Error('usage: plot-decode-attention.js results.json out.svg [batch] [dtype]');
const batch = Number(batchArg ?? 32);
const dtype = dtypeArg ?? 'fp8_e4m3';
type Results = { card: string; commit: string; date: string; rows: Row[] };
const data = JSON.parse(readFileSync(file, 'utf8')) as Results;
const before = beforeFile ? (JSON.parse(readFileSync(beforeFile, 'utf8')) as Results) : undefined;
const pick = (d: Results, source: 'now' | 'before') => d.rows.filter((r) => r.batch === batch && r.dtype === dtype).map((r) => ({ ...r, source }));
const rows = [...pick(data, 'now'), ...(before ? pick(before, 'before') : [])];
const hasPortableNow = rows.some((r) => r.source === 'now' && r.engine === 'f32');
type Tagged = Row & { source: 'now' | 'before' };

const W = 420, H = 300, M = { l: 60, r: 15, t: 40, b: 45 };
const series = [
  { name: 'ours, portable (f32 FMA)', color: '#1f77b4', get: (r: Tagged) => (r.engine === 'f32' && (r.source === 'now' || !hasPortableNow) ? r.ms : NaN) },
  { name: `ours, subgroup-matrix${before ? ` (${before.commit}, ${before.date.slice(0, 10)})` : ''}`, color: '#ff9896', get: (r: Tagged) => (r.engine === 'subgroup-matrix' && r.source === 'before' ? r.ms : NaN) },
  { name: 'ours, subgroup-matrix', color: '#d62728', get: (r: Tagged) => (r.engine === 'subgroup-matrix' && r.source === 'now' ? r.ms : NaN) },
  { name: 'SGLang Triton', color: '#2ca02c', get: (r: Tagged) => (r.source === 'now' ? r['sglang ms'] : NaN) },
].filter((s) => rows.some((r) => Number.isFinite(s.get(r))));
const panels = [128, 16].map((heads, i) => {
  const pr = rows.filter((r) => r.heads === heads);
  const ctxs = [...new Set(pr.map((r) => r.context))].sort((a, b) => a - b);
  const vals = pr.flatMap((r) => series.map((s) => s.get(r))).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.log10(Math.min(...vals)) - 0.1, hi = Math.log10(Math.max(...vals)) + 0.1;
  const cx0 = Math.log2(ctxs[0]!), cx1 = Math.log2(ctxs[ctxs.length - 1]!);
  const x = (c: number) => M.l + ((Math.log2(c) - cx0) / (cx1 - cx0 || 1)) * (W - M.l - M.r);
  const y = (v: number) => M.t + (1 - (Math.log10(v) - lo) / (hi - lo)) * (H - M.t - M.b);
  const parts: string[] = [`<g transform="translate(${i * W},0)">`];
  parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${heads} heads, batch ${batch}, ${dtype}</text>`);
  parts.push(`<rect x="${M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#888"/>`);
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#ddd"/>`);
    parts.push(`<text x="${M.l - 5}" y="${y(10 ** e) + 4}" text-anchor="end" font-size="11">${10 ** e} ms</text>`);
  }
  for (const c of ctxs) parts.push(`<text x="${x(c)}" y="${H - M.b + 16}" text-anchor="middle" font-size="11">${c}</text>`);
  parts.push(`<text x="${W / 2}" y="${H - 8}" text-anchor="middle" font-size="12">context (tokens)</text>`);
  for (const s of series) {
    const pts = ctxs.map((c) => [c, pr.map(s.get).find((v, k) => pr[k]!.context === c && Number.isFinite(v))] as const)
      .filter(([, v]) => v !== undefined && Number.isFinite(v)) as [number, number][];
    if (pts.length === 0) continue;
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map(([c, v]) => `${x(c)},${y(v)}`).join(' ')}"/>`);
    for (const [c, v] of pts) parts.push(`<circle cx="${x(c)}" cy="${y(v)}" r="3" fill="${s.color}"/>`);
  }
  parts.push('</g>');
  return parts.join('\n');
});
const legend = series.map((s, i) => `<g transform="translate(${20 + (i % 2) * 420},${H + 8 + 16 * Math.floor(i / 2)})"><rect width="14" height="4" y="-4" fill="${s.color}"/><text x="20" y="0" font-size="12">${s.name}</text></g>`);
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 66}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${panels.join('\n')}
${legend.join('\n')}
<text x="${W}" y="${H + 58}" text-anchor="middle" font-size="11">${data.card}, commit ${data.commit}, ${data.date.slice(0, 10)}; GPU timestamps, median of runs${note ? `; ${note}` : ''}</text>
</svg>
`;
writeFileSync(out, svg);
console.log(`wrote ${out} (${rows.length} rows)`);
