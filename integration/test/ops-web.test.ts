// Operating a running cluster (real nats-server, redis-server, WebGPU nodes, the gateway's HTTP app):
//   1. GET /v1/cluster after real traffic: both decode nodes with their layout, pages and the tokens they
//      report sending, this gateway's TTFT/ITL per node counted request by request, the prefill worker;
//   2. the chat page in headless Chromium streams a greedy answer equal to the API's for the same request,
//      and sends the conversation so far with the next message;
//   3. the cluster page lists the nodes and draws every plot;
//   4. on a gateway with API keys (a second HTTP app on the same cluster), both pages ask for a key and work
//      with it.
// One small cluster serves all three; the pages' screenshots land in test-output/ (and docs/screenshots/ with UPDATE_SCREENSHOTS=1).
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ApiKeySet, startGateway } from '@latentwire/gateway';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { launchBrowser, OUTPUT_DIR, screenshot } from './helpers/browser.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

interface Case { readonly input_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

let cluster: TestCluster;
let browser: Browser;
test.before(async () => {
  [cluster, browser] = await Promise.all([
    startCluster({ decodeNodes: 2, kvDtype: 'bf16', pageSize: 16, numPages: 64, maxBatch: 8, clusterSampleMs: 250 }),
    launchBrowser(),
  ]);
});
test.after.always(async () => {
  await browser?.close();
  await cluster?.stop();
});

// Predicates below are functions (serialised and run in the page, so `globalThis` there, no DOM types here):
// Playwright would eval a string one, which the pages' CSP rightly refuses.
async function newPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.setDefaultTimeout(60_000);
  return page;
}

async function until<T>(what: string, get: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test.serial('ops - /v1/cluster after traffic: nodes, layout, pages, tokens sent, per-node TTFT and ITL, prefill worker', async (t) => {
  const { client, model } = cluster;
  const N = 3;
  let completion = 0;
  for (let i = 0; i < N; i++) {
    const r = await client.completions.create({ model, prompt: cases[i % cases.length]!.input_ids, max_tokens: 5 + i, temperature: 0 });
    completion += r.usage!.completion_tokens;
  }
  t.true(await cluster.pagesBack());
  // the nodes' own count of tokens sent reaches the gateway with their next heartbeats
  await until('heartbeats with every token', () =>
    cluster.gateway.registry.nodes().reduce((a, n) => a + (n.heartbeat.tokensOut ?? 0), 0) === completion ? true : undefined);
  await new Promise((r) => setTimeout(r, 600)); // two more samples

  const snap = (await (await fetch(`${cluster.url}/v1/cluster`)).json()) as any;
  mkdirSync(OUTPUT_DIR, { recursive: true });
  writeFileSync(join(OUTPUT_DIR, 'cluster.json'), JSON.stringify(snap, null, 2)); // to look at when this fails
  t.deepEqual(snap.decode.map((n: any) => n.nodeId), ['decode-0', 'decode-1']);
  for (const n of snap.decode) {
    t.like(n, {
      role: 'decode', model: 'tiny-deepseek-v2', compatible: true, kv: { dtype: 'bf16', pageSize: 16 },
      load: { running: 0, waiting: 0, maxBatch: 8 }, pages: { used: 0, reserved: 0 }, throughput: { source: 'node' },
    }, n.nodeId);
    t.is(n.pages.free, n.pages.total);
    t.true(n.pages.total > 0);
    t.true(n.startedAt <= snap.at);
    t.true(n.history.length >= 2, `${n.history.length} samples`);
    t.true(n.history.every((s: any) => s.usedPages + s.reservedPages + s.freePages === n.pages.total));
  }
  // every request's TTFT once, every later token's gap once, on the node that served it
  const sum = (f: (n: any) => number) => snap.decode.reduce((a: number, n: any) => a + f(n), 0);
  t.is(sum((n) => n.latency.ttftMs.count), N);
  t.is(sum((n) => n.latency.itlMs.count), completion - N);
  const served = snap.decode.filter((n: any) => n.latency.ttftMs.count > 0);
  t.true(served.every((n: any) => n.latency.ttftMs.p50 > 0 && n.latency.ttftMs.p90 >= n.latency.ttftMs.p50));
  // throughput: the tokens sent over the window, in samples and in the summary
  t.true(sum((n) => n.throughput.tokensPerSecond ?? 0) > 0);
  t.true(snap.decode.some((n: any) => n.history.some((s: any) => s.tokensPerSecond > 0)));
  t.deepEqual(snap.prefill.workers.map((w: any) => w.name), ['prefill-0']);
  t.like(snap.prefill.queue, { waiting: 0, active: 0 });
});

test.serial('ops - the chat page streams the same greedy answer as the API and keeps the conversation', async (t) => {
  const { client, model } = cluster;
  const page = await newPage();
  t.teardown(() => page.close());
  const sent: any[] = [];
  page.on('request', (r) => void (r.url().endsWith('/v1/chat/completions') && sent.push(r.postDataJSON())));
  await page.goto(`${cluster.url}/`);
  await page.waitForFunction(() => (globalThis as any).document.getElementById('model').options.length > 0);
  t.is(await page.inputValue('#model'), model);
  t.true(await page.isHidden('#key-box')); // no API keys on this gateway
  await page.fill('#temperature', '0');
  await page.fill('#max_tokens', '8');
  await page.fill('#seed', '7');

  const ask = async (text: string) => {
    const before = await page.locator('.message.assistant').count();
    await page.fill('#prompt', text);
    await page.click('#send');
    const answer = page.locator('.message.assistant').nth(before);
    await answer.and(page.locator('[data-state="done"]')).waitFor();
    return answer;
  };
  const first = await ask('Hello there');
  const api = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello there' }], temperature: 0, max_tokens: 8, top_p: 1, seed: 7 });
  const expected = api.choices[0]!.message.content!;
  t.true(expected.length > 0);
  t.is(await first.locator('.text').textContent(), expected);
  t.like(sent[0], { stream: true, temperature: 0, max_tokens: 8, top_p: 1, seed: 7, messages: [{ role: 'user', content: 'Hello there' }] });
  t.is(await first.getAttribute('data-tokens'), String(api.usage!.completion_tokens));
  t.regex((await first.locator('.stats').textContent())!, /TTFT \d+ ms .* tokens/);

  await ask('And then?');
  t.deepEqual(sent[1].messages, [
    { role: 'user', content: 'Hello there' }, { role: 'assistant', content: expected }, { role: 'user', content: 'And then?' },
  ]);
  t.is(await page.locator('.message').count(), 4);
  t.true(await page.isHidden('#error'));
  t.log(await screenshot(page, 'chat'));
});

test.serial('ops - the cluster page lists the nodes and draws every plot', async (t) => {
  const page = await newPage();
  t.teardown(() => page.close());
  await page.goto(`${cluster.url}/cluster?window=60`);
  await page.waitForFunction(() => Number((globalThis as any).document.body.dataset.polls ?? 0) >= 1);
  t.deepEqual(await page.locator('#decode-nodes tbody tr').evaluateAll((rows: any[]) => rows.map((r) => r.dataset.nodeId)), ['decode-0', 'decode-1']);
  t.deepEqual(await page.locator('#prefill-workers tbody tr').evaluateAll((rows: any[]) => rows.map((r) => r.dataset.worker)), ['prefill-0']);
  t.regex((await page.locator('#decode-nodes tbody tr').first().textContent())!, /tiny-deepseek-v2.*bf16, 16 tokens\/page/);
  t.true(await page.isHidden('#error'));
  for (const id of ['plot-pages', 'plot-batch', 'plot-throughput', 'plot-ttft', 'plot-itl']) {
    const canvas = page.locator(`#${id}`);
    t.true(Number(await canvas.getAttribute('data-points')) >= 2, `${id}: points`);
    // pixels of a node's line colour (not just the grid and labels) are on the canvas
    const colored = await canvas.evaluate((c: any) => {
      const d: Uint8ClampedArray = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3]! > 200 && Math.abs(d[i]! - d[i + 2]!) > 60) n++;
      return n;
    });
    t.true(colored > 20, `${id}: ${colored} coloured pixels`);
    t.is(await page.locator(`.legend[data-for="${id}"] span`).count(), id === 'plot-ttft' || id === 'plot-itl' ? 4 : 2, id);
  }
  t.log(await screenshot(page, 'cluster'));
});

test.serial('ops - with API keys both pages ask for one, then work with it', async (t) => {
  const keys = { open: false, keys: ApiKeySet.of(['sk-web-user']) } as const;
  const ops = { open: false, keys: ApiKeySet.of(['sk-web-operator']) } as const;
  const gw = await startGateway({ modelDir: FIXTURE_DIR, backend: cluster.gateway.backend, cluster: cluster.view, apiAccess: keys, opsAccess: ops });
  t.teardown(() => gw.close());
  const page = await newPage();
  t.teardown(() => page.close());

  await page.goto(`${gw.url}/`);
  await page.locator('#key-box').waitFor({ state: 'visible' });
  await page.waitForFunction(() => (globalThis as any).document.getElementById('model-status').textContent === 'API key needed');
  await page.fill('#api-key', 'sk-web-user');
  await page.dispatchEvent('#api-key', 'change');
  await page.waitForFunction(() => (globalThis as any).document.getElementById('model').options.length > 0);
  await page.fill('#temperature', '0');
  await page.fill('#max_tokens', '4');
  await page.fill('#prompt', 'Hi');
  await page.click('#send');
  const answer = page.locator('.message.assistant').first();
  await answer.and(page.locator('[data-state="done"]')).waitFor();
  t.is(await answer.getAttribute('data-tokens'), '4');

  // the operators' key is another: the user's key is refused, the operator's shows the cluster
  await page.goto(`${gw.url}/cluster`);
  await page.locator('#key-box').waitFor({ state: 'visible' });
  t.regex((await page.textContent('#error'))!, /401/);
  await page.fill('#api-key', 'sk-web-operator');
  await page.dispatchEvent('#api-key', 'change');
  await page.waitForFunction(() => Number((globalThis as any).document.body.dataset.polls ?? 0) >= 1);
  t.is(await page.locator('#decode-nodes tbody tr[data-node-id]').count(), 2);
  t.true(await page.isHidden('#error'));
});
