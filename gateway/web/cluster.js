// The cluster page: polls /v1/cluster and shows every node (decode nodes from their heartbeats, prefill
// workers from the queue's Redis clients) as table rows, and their samples of the last minutes as plots.
import { authHeaders, errorText, keyField } from './common.js';
import { COLORS, drawPlot } from './plot.js';

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
// /cluster?window=60 zooms the plots and statistics to the last minute (the API checks the value)
const windowParam = new URLSearchParams(location.search).get('window');
const CLUSTER_URL = windowParam === null ? '/v1/cluster' : `/v1/cluster?window=${encodeURIComponent(windowParam)}`;
let last = null;

function cell(text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  return td;
}

const ms = (v) => (v === null || v === undefined ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 1 : 0)} ms`);
const pair = (p) => (p.count === 0 ? '–' : `${ms(p.p50)} / ${ms(p.p90)}`);
const ago = (s) => (s === null ? '–' : s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${s} s`);

function pagesCell(p) {
  const bar = document.createElement('span');
  bar.className = 'bar';
  for (const [n, color] of [[p.used, '#2f6fde'], [p.reserved ?? 0, '#e0a524']]) {
    const seg = document.createElement('span');
    seg.style.width = `${p.total ? (100 * n) / p.total : 0}%`;
    seg.style.background = color;
    bar.append(seg);
  }
  const wrap = document.createElement('span');
  wrap.append(bar, `${p.used} · ${p.reserved ?? '?'} · ${p.free} / ${p.total}`);
  return wrap;
}

function renderTables(snap) {
  const rows = snap.decode.map((n) => {
    const tr = document.createElement('tr');
    tr.dataset.nodeId = n.nodeId;
    const name = document.createElement('span');
    name.textContent = n.nodeId + ' ';
    if (!n.compatible) {
      const badge = document.createElement('span');
      badge.className = 'badge bad';
      badge.textContent = 'other model';
      name.append(badge);
    }
    tr.append(
      cell(name), cell(n.model ?? n.fingerprint.slice(0, 12)), cell(`${n.kv.dtype}, ${n.kv.pageSize} tokens/page`),
      cell(`${n.load.running} / ${n.load.waiting} / ${n.load.maxBatch}`, 'num'), cell(pagesCell(n.pages)),
      cell(n.throughput.tokensPerSecond === null ? '–' : n.throughput.tokensPerSecond.toFixed(1), 'num'),
      cell(pair(n.latency.ttftMs), 'num'), cell(pair(n.latency.itlMs), 'num'), cell(`${(n.lastHeartbeatMsAgo / 1000).toFixed(1)} s ago`, 'num'),
    );
    return tr;
  });
  $('decode-nodes').tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(9, 'no decode node is sending heartbeats')]));

  const workers = snap.prefill.workers;
  const wrows = (workers ?? []).map((w) => {
    const tr = document.createElement('tr');
    tr.dataset.worker = w.name;
    tr.append(cell(w.name), cell(w.addr ?? '–'), cell(String(w.connections), 'num'), cell(ago(w.ageSeconds), 'num'), cell(ago(w.idleSeconds), 'num'));
    return tr;
  });
  const none = workers === null ? `unknown (${snap.prefill.error ?? 'Redis unreachable'})` : 'no prefill worker on the queue';
  $('prefill-workers').tBodies[0].replaceChildren(...(wrows.length ? wrows : [emptyRow(5, none)]));

  const q = snap.prefill.queue;
  const sum = (f) => snap.decode.reduce((a, n) => a + f(n), 0);
  const tps = sum((n) => n.throughput.tokensPerSecond ?? 0);
  const tiles = [
    ['Model', snap.model.id], ['Decode nodes', String(snap.decode.length)], ['Prefill workers', workers === null ? '?' : String(workers.length)],
    ['Running / waiting', `${sum((n) => n.load.running)} / ${sum((n) => n.load.waiting)}`],
    ['Pages in use', `${sum((n) => n.pages.used + (n.pages.reserved ?? 0))} / ${sum((n) => n.pages.total)}`],
    ['Tokens/s', tps.toFixed(1)], ['Prefill queue', q ? `${q.waiting ?? 0} waiting, ${q.active ?? 0} active` : '–'],
  ];
  $('summary').replaceChildren(...tiles.map(([k, v]) => {
    const d = document.createElement('div');
    const b = document.createElement('b');
    b.textContent = v;
    d.append(k, b);
    return d;
  }));
}

function emptyRow(span, text) {
  const tr = document.createElement('tr');
  const td = cell(text, 'muted');
  td.colSpan = span;
  tr.append(td);
  return tr;
}

/** plot id → the figures of one sample it draws (one line each; the second dashed). */
const PLOTS = {
  'plot-pages': [['', (s) => s.usedPages + s.reservedPages]],
  'plot-batch': [['', (s) => s.running]],
  'plot-throughput': [['', (s) => s.tokensPerSecond]],
  'plot-ttft': [[' p50', (s) => s.ttftP50Ms], [' p90', (s) => s.ttftP90Ms]],
  'plot-itl': [[' p50', (s) => s.itlP50Ms], [' p90', (s) => s.itlP90Ms]],
};

function renderPlots(snap) {
  const spanMs = snap.windowSeconds * 1000;
  for (const [id, figures] of Object.entries(PLOTS)) {
    const series = snap.decode.flatMap((n, i) => figures.map(([suffix, f], j) => ({
      label: n.nodeId + suffix, color: COLORS[i % COLORS.length], dashed: j > 0, points: n.history.map((s) => [s.at, f(s)]),
    })));
    drawPlot($(id), series, { spanMs, now: snap.at });
    document.querySelector(`.legend[data-for="${id}"]`).replaceChildren(...series.map((s) => {
      const span = document.createElement('span');
      const swatch = document.createElement('i');
      if (s.dashed) {
        swatch.className = 'dashed';
        swatch.style.borderTopColor = s.color;
      } else {
        swatch.style.background = s.color;
      }
      span.append(swatch, s.label);
      return span;
    }));
  }
}

async function poll() {
  try {
    const res = await fetch(CLUSTER_URL, { headers: authHeaders(), cache: 'no-store' });
    if (!res.ok) {
      if (res.status === 401) $('key-box').hidden = false;
      throw new Error(await errorText(res));
    }
    last = await res.json();
    $('error').hidden = true;
    renderTables(last);
    renderPlots(last);
    $('updated').textContent = `updated ${new Date(last.at).toLocaleTimeString()}`;
    document.body.dataset.polls = String(Number(document.body.dataset.polls ?? 0) + 1);
  } catch (err) {
    $('error').textContent = `cluster: ${err.message}`;
    $('error').hidden = false;
  }
}

window.addEventListener('resize', () => last && renderPlots(last));
await keyField($('api-key'), $('key-box'), '/v1/cluster', () => void poll());
await poll();
setInterval(() => void poll(), POLL_MS);
