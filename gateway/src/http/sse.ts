// Server-sent events exactly as OpenAI frames them: `data: <json>\n\n` per chunk, `data: [DONE]\n\n` last.
// Writes wait for 'drain' so a slow client slows its own request down instead of growing server memory.
import type { Response } from 'express';

export class SseWriter {
  constructor(private readonly res: Response) {}

  open(headers: Readonly<Record<string, string>> = {}): void {
    this.res.status(200);
    this.res.set({
      ...headers,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      // Tell reverse proxies (nginx) not to buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    this.res.flushHeaders();
  }

  send(data: unknown): Promise<void> {
    return this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  async done(): Promise<void> {
    await this.write('data: [DONE]\n\n');
    this.res.end();
  }

  private async write(frame: string): Promise<void> {
    const res = this.res;
    if (res.destroyed || res.writableEnded) return;
    if (res.write(frame)) return;
    await new Promise<void>((resolve) => {
      const settle = (): void => {
        res.off('drain', settle);
        res.off('close', settle);
        resolve();
      };
      res.on('drain', settle);
      res.on('close', settle);
    });
  }
}
