// The HTTP layer's side of n > 1 and best_of, against a test double that honours the choices contract (one
// backend request of n choices, events tagged with their choice, choice i scripted by seed + i, a choice's
// signal ending it alone): choice i of n equals the solo request of seed + i; one backend call; a choice the
// gateway finishes (a stop id) is ended alone; streaming chunks carry their index; usage sums; best_of ranks
// by cumulative logprob and hides logprobs not asked for. The real cluster: integration/test/choices.test.ts.
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type OpenAI from 'openai';
import type { BackendReadiness, GenerationBackend, GenerationEvent, GenerationRequest } from '../../src/index.js';
import { FinishedByGateway } from '../../src/http/backend.js';
import { MODEL_ID, REFERENCE } from './helpers/fixture.js';
import { startTestGateway } from './helpers/gateway.js';

/** Seed s replays a reference case's greedy ids; token j of seed s has logprob -(s % 5 + 1) / 10 (seed-ranked). */
const script = (seed: number) => REFERENCE[seed % REFERENCE.length]!.greedy_ids;
const logprobOf = (seed: number) => -((seed % 5) + 1) / 10;

interface Call { readonly req: GenerationRequest; readonly signal: AbortSignal; readonly choiceSignals: readonly AbortSignal[] }

class ChoicesBackend implements GenerationBackend {
  readonly calls: Call[] = [];
  maxRequestTokens(): number | undefined {
    return undefined;
  }
  async readiness(): Promise<BackendReadiness> {
    return { ready: true };
  }
  async *generate(req: GenerationRequest, signal: AbortSignal, choiceSignals: readonly AbortSignal[] = []): AsyncGenerator<GenerationEvent> {
    this.calls.push({ req, signal, choiceSignals });
    const n = req.n ?? 1;
    const pos = new Array<number>(n).fill(0);
    const done = new Array<boolean>(n).fill(false);
    while (!signal.aborted && done.some((d) => !d)) {
      for (let i = 0; i < n; i++) {
        if (done[i] || choiceSignals[i]?.aborted) {
          done[i] = true;
          continue;
        }
        const seed = (req.sampling.seed + i) >>> 0;
        const tok = script(seed)[pos[i]!]!;
        const last = ++pos[i]! >= req.maxTokens;
        if (last) done[i] = true;
        const lp = req.sampling.logprobs !== undefined ? { logprobs: [{ logprob: logprobOf(seed), top: [] }] } : {};
        // echo with logprobs: made-up prompt logprobs on each choice's first event (a real prefill computes them)
        const prompt = pos[i] === 1 && req.promptLogprobs !== undefined
          ? { promptLogprobs: req.promptIds.slice(1).map((id, j) => ({ logprob: -(j + 1) / 8, top: req.promptLogprobs! > 0 ? [[id, -(j + 1) / 8] as const] : [] })) }
          : {};
        yield { tokens: [tok], ...lp, ...prompt, ...(n > 1 ? { choice: i } : {}), ...(last ? { finishReason: 'length' as const } : {}) };
        await sleep(1);
      }
    }
  }
}

test('choices - n = 3: one backend request; choice i equals the solo request of seed + i; usage sums; a stop id ends one choice alone', async (t) => {
  const backend = new ChoicesBackend();
  const { client } = await startTestGateway(t, backend);
  const body = { model: MODEL_ID, prompt: 'Hi', max_tokens: 6, seed: 10 };
  const solos: OpenAI.Completion[] = [];
  for (let i = 0; i < 3; i++) solos.push(await client.completions.create({ ...body, seed: 10 + i }));
  backend.calls.length = 0;
  const r = await client.completions.create({ ...body, n: 3 });
  t.is(backend.calls.length, 1);
  t.is(backend.calls[0]!.req.n, 3);
  t.is(backend.calls[0]!.req.sampling.seed, 10, 'the request carries the base seed; choice i adds i');
  t.deepEqual(r.choices.map((c) => [c.index, c.text, c.finish_reason]), solos.map((s, i) => [i, s.choices[0]!.text, 'length']));
  t.is(r.usage!.completion_tokens, 18);
  t.is(r.usage!.prompt_tokens, solos[0]!.usage!.prompt_tokens);

  // choice 1's third token as a stop id (seed 11's script) ends choice 1 there, by the gateway; the others run on
  const stopId = script(11)[2]!;
  backend.calls.length = 0;
  const cut = await client.completions.create({ ...body, n: 3, stop_token_ids: [stopId] } as never) as OpenAI.Completion;
  t.is(cut.choices[1]!.finish_reason, 'stop');
  const { choiceSignals, signal } = backend.calls[0]!;
  t.true(choiceSignals[1]!.reason instanceof FinishedByGateway);
  t.false(signal.aborted, 'the request itself is not cancelled');
  for (const i of [0, 2]) if (!script(10 + i).slice(0, 6).includes(stopId)) t.is(cut.choices[i]!.text, r.choices[i]!.text);
});

test('choices - streaming chat n = 2: every chunk has one choice with its index, a role chunk and one finish each, usage summed', async (t) => {
  const backend = new ChoicesBackend();
  const { client } = await startTestGateway(t, backend);
  const body = { model: MODEL_ID, messages: [{ role: 'user' as const, content: 'Hi' }], max_tokens: 4, seed: 3, n: 2 };
  const whole = await client.chat.completions.create(body);
  const text = ['', ''];
  const finishes: string[][] = [[], []];
  const roles = [0, 0];
  let usage;
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })) {
    usage = chunk.usage ?? usage;
    t.true(chunk.choices.length <= 1);
    for (const c of chunk.choices) {
      text[c.index] += c.delta.content ?? '';
      if (c.delta.role) roles[c.index]!++;
      if (c.finish_reason) finishes[c.index]!.push(c.finish_reason);
    }
  }
  t.deepEqual(roles, [1, 1]);
  t.deepEqual(text, whole.choices.map((c) => c.message.content));
  t.deepEqual(finishes, [['length'], ['length']]);
  t.deepEqual(usage, whole.usage);
  t.is(whole.usage!.completion_tokens, 8);
});

test('choices - best_of: candidates get logprobs on the wire, the n of highest cumulative logprob come back best first, logprobs only when asked', async (t) => {
  const backend = new ChoicesBackend();
  const { client } = await startTestGateway(t, backend);
  // seeds 20..23: logprob per token -(s % 5 + 1)/10 = -0.1, -0.2, -0.3, -0.4: seeds 20 and 21 are best
  const r = await client.completions.create({ model: MODEL_ID, prompt: 'Hi', max_tokens: 3, seed: 20, n: 2, best_of: 4 } as never) as OpenAI.Completion;
  t.is(backend.calls[0]!.req.n, 4);
  t.is(backend.calls[0]!.req.sampling.logprobs, 0);
  const solo = async (seed: number) => (await client.completions.create({ model: MODEL_ID, prompt: 'Hi', max_tokens: 3, seed })).choices[0]!.text;
  t.deepEqual(r.choices.map((c) => [c.index, c.text, c.logprobs]), [[0, await solo(20), null], [1, await solo(21), null]]);
  t.is(r.usage!.completion_tokens, 12);
  const lp = await client.completions.create({ model: MODEL_ID, prompt: 'Hi', max_tokens: 3, seed: 22, best_of: 3, logprobs: 0 } as never) as OpenAI.Completion;
  // seeds 22, 23, 24: 24 % 5 = 4 → -0.5; best is 22 (-0.3)
  t.is(lp.choices.length, 1);
  t.is(lp.choices[0]!.text, await solo(22));
  t.deepEqual(lp.choices[0]!.logprobs!.token_logprobs, [-0.3, -0.3, -0.3]);
});

test('echo - the prompt in front of each choice (text prompt as sent, ids decoded), streamed as its own first chunk; with logprobs the prompt\'s first', async (t) => {
  const backend = new ChoicesBackend();
  const { client } = await startTestGateway(t, backend);
  const body = { model: MODEL_ID, prompt: 'Once upon', max_tokens: 4, seed: 5 };
  const plain = await client.completions.create(body);
  const echoed = await client.completions.create({ ...body, echo: true, n: 2 });
  const second = await client.completions.create({ ...body, seed: 6 });
  t.deepEqual(echoed.choices.map((c) => c.text), [`Once upon${plain.choices[0]!.text}`, `Once upon${second.choices[0]!.text}`]);
  t.deepEqual(echoed.usage, { ...plain.usage!, completion_tokens: 8, total_tokens: plain.usage!.prompt_tokens + 8 }, 'the echoed prompt is not completion');
  const ids = REFERENCE[0]!.input_ids;
  const fromIds = await client.completions.create({ ...body, prompt: ids, echo: true } as never) as OpenAI.Completion;
  const { model: folder } = await import('./helpers/fixture.js');
  t.true(fromIds.choices[0]!.text.startsWith(folder().tokenizer.decode(ids)));
  const chunks: string[] = [];
  for await (const c of await client.completions.create({ ...body, echo: true, stream: true })) chunks.push(c.choices[0]?.text ?? '');
  t.is(chunks[0], 'Once upon');
  t.is(chunks.join(''), `Once upon${plain.choices[0]!.text}`);

  // with logprobs: the prompt's tokens first (the first without a logprob), then the completion's, offsets running on
  const lp = await client.completions.create({ ...body, echo: true, logprobs: 1, n: 2 });
  const solo = await client.completions.create({ ...body, logprobs: 1 });
  const promptLen = echoed.usage!.prompt_tokens;
  for (const c of lp.choices) {
    const l = c.logprobs!;
    t.is(l.tokens!.length, promptLen + 4);
    t.is(l.token_logprobs![0] as number | null, null);
    t.is(l.top_logprobs![0] as object | null, null);
    t.deepEqual(l.token_logprobs!.slice(1, promptLen), Array.from({ length: promptLen - 1 }, (_, j) => -(j + 1) / 8));
    // the token texts spell the echoed text, after the bos token the tokenizer put in front (its text, as vLLM shows it)
    t.is(l.tokens!.join(''), `${l.tokens![0]}${c.text}`);
    t.deepEqual(l.text_offset, l.tokens!.map((_, j) => l.tokens!.slice(0, j).join('').length));
  }
  t.deepEqual(lp.choices[0]!.logprobs!.token_logprobs!.slice(promptLen), solo.choices[0]!.logprobs!.token_logprobs);
  const frames: OpenAI.Completion[] = [];
  for await (const c of await client.completions.create({ ...body, echo: true, logprobs: 1, stream: true })) frames.push(c);
  t.is(frames[0]!.choices[0]!.text, 'Once upon');
  t.is(frames[0]!.choices[0]!.logprobs!.tokens!.length, promptLen);
  t.is(frames[1]!.choices[0]!.logprobs!.text_offset![0], frames[0]!.choices[0]!.logprobs!.tokens!.join('').length, 'offsets run on past the prompt');
  // bounded: (prompt tokens - 1) × (logprobs + 1) pairs
  const long = Array.from({ length: 2000 }, () => 5);
  const err = await t.throwsAsync(client.completions.create({ ...body, prompt: long, echo: true, logprobs: 20 }));
  t.like(err, { status: 400, param: 'echo' });
});
