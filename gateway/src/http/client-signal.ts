// An AbortSignal that fires when the client goes away before its response is complete.
import type { Request, Response } from 'express';

/**
 * Listens on the response's 'close', not the request's: since Node 16 a request emits 'close' as soon as
 * its body has been read, while the response's 'close' comes when the response is done or the connection
 * dropped; only the second case, with the response unfinished, is a disconnect.
 */
export function clientGoneSignal(req: Request, res: Response): AbortSignal {
  const ac = new AbortController();
  const gone = (): void => ac.abort(new Error('client disconnected'));
  if (req.socket.destroyed) gone();
  else res.on('close', () => res.writableFinished || gone());
  return ac.signal;
}
