// A small time-series line plot on a <canvas>: one line per series, a y axis from 0 to a rounded maximum,
// the x axis the last `spanMs` up to now. Drawn at the device's pixel ratio so it stays sharp.

export const COLORS = ['#2f6fde', '#e07b24', '#2ca66a', '#c23b3b', '#8a4fd1', '#1b9aaa', '#b58a00', '#6b7280'];

/** 1, 2 or 5 × a power of ten, at least x. */
function niceCeil(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)}k`;
  return Number.isInteger(v) ? String(v) : String(+v.toFixed(v < 1 ? 2 : 1));
}

/**
 * series: [{ label, color, dashed?, points: [[t, y|null], …] }]; returns how many points were drawn (also set
 * as the canvas's data-points, which the browser tests read).
 */
export function drawPlot(canvas, series, { spanMs, now = Date.now(), unit = '' }) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const left = 44, right = 8, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  const t0 = now - spanMs;
  const values = series.flatMap((s) => s.points.filter(([t, y]) => t >= t0 && y !== null).map(([, y]) => y));
  const max = niceCeil(Math.max(0, ...values));
  const x = (t) => left + ((t - t0) / spanMs) * pw;
  const y = (v) => top + ph - (v / max) * ph;

  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#677086';
  ctx.strokeStyle = '#e5e8ee';
  ctx.lineWidth = 1;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    ctx.beginPath();
    ctx.moveTo(left, Math.round(y(v)) + 0.5);
    ctx.lineTo(w - right, Math.round(y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(fmt(v) + (i === 4 ? unit : ''), left - 5, y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const minutes = spanMs / 60_000;
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (spanMs * i) / 4;
    const ago = minutes * (1 - i / 4);
    ctx.textAlign = i === 4 ? 'right' : 'center'; // 'now' sits at the right edge
    ctx.fillText(i === 4 ? 'now' : ago >= 1 ? `-${+ago.toFixed(1)}m` : `-${Math.round(ago * 60)}s`, i === 4 ? w - right : x(t), h - bottom + 5);
  }

  let drawn = 0;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dashed ? [5, 4] : []);
    ctx.beginPath();
    let pen = false;
    for (const [t, v] of s.points) {
      if (t < t0 || v === null) {
        pen = false; // a gap: no value then
        continue;
      }
      if (pen) ctx.lineTo(x(t), y(v));
      else ctx.moveTo(x(t), y(v));
      pen = true;
      drawn++;
    }
    ctx.stroke();
    // a lone point would draw nothing as a line: mark every point too
    ctx.fillStyle = s.color;
    for (const [t, v] of s.points) if (t >= t0 && v !== null) ctx.fillRect(x(t) - 1.5, y(v) - 1.5, 3, 3);
  }
  ctx.setLineDash([]);
  canvas.dataset.points = String(drawn);
  return drawn;
}
