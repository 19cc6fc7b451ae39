// Token ids as the decode nodes sent them to the gateway: every `tokens` message on the cluster's subjects,
// collected per request id, so the end-to-end tests compare ids rather than decoded text. The response id of
// the OpenAI API is `cmpl-<requestId>` / `chatcmpl-<requestId>`, the request id of the tokens subject.
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { decodeMessage, type WireLogprobs } from '@latentwire/protocol';

interface Part { readonly seq: number; readonly tokens: readonly number[]; readonly last: boolean; readonly logprobs?: readonly WireLogprobs[] | undefined }

export class WireTokens {
  private readonly parts = new Map<string, Part[]>();
  private readonly sub: Subscription;

  constructor(private readonly nc: NatsConnection, prefix: string) {
    this.sub = nc.subscribe(`${prefix}.tokens.>`, {
      callback: (err, msg) => {
        if (err) return;
        const m = decodeMessage(msg.data, ['tokens']);
        const list = this.parts.get(m.requestId) ?? [];
        list.push({ seq: m.seq, tokens: m.tokens, last: m.finishReason !== undefined, logprobs: m.logprobs });
        this.parts.set(m.requestId, list);
      },
    });
  }

  /** The completion ids of the response with this id, in order, once its last message has arrived (≤ 2 s). */
  async ids(responseId: string): Promise<number[]> {
    return (await this.parts_(responseId)).flatMap((p) => p.tokens);
  }

  /** The logprobs the tokens messages carried, one per id of ids() (undefined where a message had none). */
  async logprobs(responseId: string): Promise<(WireLogprobs | undefined)[]> {
    return (await this.parts_(responseId)).flatMap((p) => p.tokens.map((_, i) => p.logprobs?.[i]));
  }

  private async parts_(responseId: string): Promise<Part[]> {
    const requestId = responseId.replace(/^(chatcmpl|cmpl)-/, '');
    await this.nc.flush();
    for (const until = Date.now() + 2000; ; await new Promise((r) => setTimeout(r, 10))) {
      const list = this.parts.get(requestId) ?? [];
      const sorted = [...list].sort((a, b) => a.seq - b.seq);
      const complete = sorted.some((p) => p.last) && sorted.every((p, i) => p.seq === i);
      if (complete) return sorted;
      if (Date.now() > until) throw new Error(`request ${requestId}: ${list.length} tokens messages, no complete sequence`);
    }
  }

  stop(): void {
    this.sub.unsubscribe();
  }
}
