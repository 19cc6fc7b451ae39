// The CLI's help and flag errors, as a user meets them: each bad flag exits 2 naming the flag and what it
// accepts, before the GPU is touched (so these run in well under a second each).
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('node', [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

test('cli usage - --help lists the commands; each command has its own --help', async (t) => {
  const top = await cli('--help');
  t.is(top.code, 0);
  t.regex(top.stdout, /Usage: latentwire/);
  t.regex(top.stdout, /logits/);
  t.regex(top.stdout, /generate/);
  const generate = await cli('generate', '--help');
  t.is(generate.code, 0);
  for (const flag of ['--prompt', '--chat', '--ids', '--max-tokens', '--temperature', '--top-p', '--top-k', '--seed', '--kv-dtype', '--page-size', '--json']) {
    t.true(generate.stdout.includes(flag), flag);
  }
  const logits = await cli('logits', '--help');
  t.is(logits.code, 0);
  t.regex(logits.stdout, /--decode-steps/);
});

test('cli usage - no command prints the help and exits 2', async (t) => {
  const r = await cli();
  t.is(r.code, 2);
  t.regex(r.stdout, /Usage: latentwire/);
});

const BAD: [string[], RegExp][] = [
  [['generate', '--ids', '1,2', '--kv-dtype', 'fp9'], /--kv-dtype <dtype>.*'fp9' is invalid.*fp8_e4m3, fp8_e5m2, bf16, f32/s],
  [['generate', '--ids', '1,2', '--top-p', '5'], /--top-p <p>.*'5' is invalid.*\(0, 1\]/s],
  [['generate', '--ids', '1,2', '--temperature', 'hot'], /--temperature <t>.*'hot' is invalid.*\[0, 100\]/s],
  [['generate', '--ids', '1,2', '--max-tokens', '0'], /--max-tokens <n>.*'0' is invalid.*whole number >= 1/s],
  [['generate', '--ids', '1,x'], /--ids <ids>.*'1,x' is invalid.*token ids/s],
  [['generate', '--prompt', 'hi', '--ids', '1'], /--prompt <text>.*cannot be used with.*--ids/s],
  [['generate'], /generate needs one of --prompt, --chat, --ids/],
  [['generate', '--ids', '1', '--bogus'], /unknown option '--bogus'/],
  [['logits'], /required option '--ids <ids>' not specified/],
  [['frobnicate'], /unknown command 'frobnicate'/],
];

for (const [args, message] of BAD) {
  test(`cli usage - ${args.join(' ')} exits 2 naming what is wrong`, async (t) => {
    const r = await cli(...args);
    t.is(r.code, 2);
    t.regex(r.stderr, message);
    t.false(/at .*\.js:\d+/.test(r.stderr), 'no stack trace');
  });
}
