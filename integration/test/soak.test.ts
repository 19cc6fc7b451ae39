// A soak of a few hundred streamed requests, some left early by their client: every stream that is read to
// its end equals its prompt's calm-run text (nothing lost or duplicated under load and cancels), the early
// leavers are cancelled on the nodes, and every page is back at the end.
import test from 'ava';
import { startCluster } from './helpers/cluster.js';

test('soak - 200 streams (1 in 4 left early): the rest token-identical to a calm run, every page back', async (t) => {
  const cluster = await startCluster({ decodeNodes: 2, maxBatch: 8, numPages: 128 });
  t.teardown(() => cluster.stop());
  const { client, model } = cluster;
  const prompts = Array.from({ length: 8 }, (_, i) => `Soak ${i}: ${'all work and no play '.repeat(1 + (i % 3))}`);
  const body = (prompt: string) => ({ model, prompt, max_tokens: 12, temperature: 0, ignore_eos: true } as const);
  const calm = await Promise.all(prompts.map(async (p) => (await client.completions.create(body(p))).choices[0]!.text));

  const N = 200, concurrency = 8;
  const counts = { completed: 0, left: 0, mismatched: 0, errored: 0 };
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < N; i = next++) {
      const p = i % prompts.length;
      const leave = i % 4 === 3;
      const abort = new AbortController();
      let text = '';
      try {
        for await (const chunk of await client.completions.create({ ...body(prompts[p]!), stream: true }, { signal: abort.signal })) {
          text += chunk.choices[0]?.text ?? '';
          if (leave && text !== '') abort.abort(); // the client goes after its first text
        }
        // the client's own abort ends the iteration quietly
        if (leave && abort.signal.aborted) counts.left++;
        else if (text === calm[p]) counts.completed++;
        else counts.mismatched++;
      } catch (err) {
        if (leave && abort.signal.aborted) counts.left++;
        else {
          counts.errored++;
          t.log(`request ${i}: ${(err as Error).message}`);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  t.log(JSON.stringify(counts));
  t.is(counts.mismatched, 0, 'every stream read to its end equals the calm run');
  t.is(counts.errored, 0);
  t.is(counts.completed + counts.left, N);
  t.true(await cluster.pagesBack(10_000), 'every page back after the soak');
});
