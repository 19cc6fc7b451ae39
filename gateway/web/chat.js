// The chat page: a conversation kept in memory, each answer streamed from /v1/chat/completions (SSE read
// from fetch's body), with its time to first token and decode speed. Model output is only ever set as
// text, never as HTML.
import { authHeaders, errorText, keyField } from './common.js';

const $ = (id) => document.getElementById(id);
const conversation = $('conversation');
const errorBox = $('error');
/** The messages sent so far, as the API takes them. */
let history = [];
let inFlight = null;

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

function addMessage(role, text) {
  const el = document.createElement('div');
  el.className = `message ${role}`;
  el.dataset.role = role;
  const label = document.createElement('div');
  label.className = 'role';
  label.textContent = role;
  const body = document.createElement('div');
  body.className = 'text';
  body.textContent = text;
  const stats = document.createElement('div');
  stats.className = 'stats';
  el.append(label, body, stats);
  conversation.append(el);
  el.scrollIntoView({ block: 'end' });
  return { el, body, stats };
}

async function loadModels() {
  const res = await fetch('/v1/models', { headers: authHeaders() });
  const select = $('model');
  if (!res.ok) {
    $('model-status').textContent = res.status === 401 ? 'API key needed' : `models: ${await errorText(res)}`;
    return;
  }
  const { data } = await res.json();
  select.replaceChildren(...data.map((m) => new Option(m.id, m.id)));
  $('model-status').textContent = data.length ? `model ${data[0].id}` : 'no model';
}

/** The request's sampling settings; a field left empty is not sent (the server's default applies). */
function settings() {
  const body = {};
  const num = (id, parse) => {
    const raw = $(id).value.trim();
    if (raw === '') return;
    const v = parse(raw);
    if (!Number.isFinite(v)) throw new Error(`${id}: not a number`);
    body[id] = v;
  };
  num('temperature', Number);
  num('top_p', Number);
  num('max_tokens', (s) => Number.parseInt(s, 10));
  num('seed', (s) => Number.parseInt(s, 10));
  return body;
}

/** Yields each `data:` payload of an SSE body. */
async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data) yield data;
    }
  }
}

async function send(text) {
  showError('');
  let params;
  try {
    params = settings();
  } catch (err) {
    showError(err.message);
    return;
  }
  const system = $('system').value.trim();
  const messages = [...(system ? [{ role: 'system', content: system }] : []), ...history, { role: 'user', content: text }];
  addMessage('user', text);
  const answer = addMessage('assistant', '');
  answer.el.dataset.state = 'streaming';
  const controller = new AbortController();
  inFlight = controller;
  $('send').disabled = true;
  $('stop').disabled = false;
  const started = performance.now();
  let firstAt = null, lastAt = null, chunks = 0, usage = null, finish = null, content = '';
  try {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...authHeaders() },
      body: JSON.stringify({ model: $('model').value, messages, stream: true, stream_options: { include_usage: true }, ...params }),
      signal: controller.signal,
    });
    if (!res.ok) throw new Error(await errorText(res));
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message ?? 'stream error');
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      if (choice.finish_reason) finish = choice.finish_reason;
      const delta = choice.delta?.content;
      if (delta) {
        const now = performance.now();
        firstAt ??= now;
        lastAt = now;
        chunks++;
        content += delta;
        answer.body.textContent = content;
      }
    }
    history = [...history, { role: 'user', content: text }, { role: 'assistant', content }];
    answer.el.dataset.state = 'done';
  } catch (err) {
    answer.el.dataset.state = controller.signal.aborted ? 'stopped' : 'failed';
    if (!controller.signal.aborted) showError(err.message);
    // a stopped answer stays in the conversation as far as it got
    if (controller.signal.aborted && content) history = [...history, { role: 'user', content: text }, { role: 'assistant', content }];
  } finally {
    inFlight = null;
    $('send').disabled = false;
    $('stop').disabled = true;
  }
  const tokens = usage?.completion_tokens ?? chunks;
  const parts = [];
  if (firstAt !== null) parts.push(`TTFT ${Math.round(firstAt - started)} ms`);
  // over the whole answer, TTFT included: tokens arrive in batches, so the gaps between them alone mislead
  if (lastAt !== null && lastAt > started) parts.push(`${(tokens / ((lastAt - started) / 1000)).toFixed(1)} tokens/s`);
  parts.push(`${tokens} tokens`);
  if (finish) parts.push(`finish: ${finish}`);
  answer.stats.textContent = parts.join(' · ');
  answer.el.dataset.ttftMs = firstAt === null ? '' : String(Math.round(firstAt - started));
  answer.el.dataset.tokens = String(tokens);
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || inFlight) return;
  $('prompt').value = '';
  void send(text);
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => inFlight?.abort());
$('clear').addEventListener('click', () => {
  inFlight?.abort();
  history = [];
  conversation.replaceChildren();
  showError('');
});

await keyField($('api-key'), $('key-box'), '/v1/models', () => void loadModels());
await loadModels();
