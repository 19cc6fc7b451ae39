// The gateway's presence on the bus: a gateway-heartbeat with its id every GATEWAY_HEARTBEAT_MS. Reserves
// carry the same id, so a decode node cancels the requests of a gateway that stops beating (killed, cut off)
// instead of decoding them for nobody until max_tokens.
import type { NatsConnection } from '@nats-io/transport-node';
import { encodeMessage, gatewayHeartbeatMessage, type WireSubjects } from '@latentwire/protocol';
import type { Logger } from 'pino';

export class GatewayPresence {
  private seq = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: WireSubjects,
    readonly gatewayId: string,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {
    this.beat();
    this.timer = setInterval(() => this.beat(), intervalMs);
    this.timer.unref();
  }

  beat(): void {
    if (this.nc.isClosed()) return;
    try {
      this.nc.publish(this.subjects.gatewayHeartbeat, encodeMessage(gatewayHeartbeatMessage({
        gatewayId: this.gatewayId, seq: this.seq, intervalMs: this.intervalMs, sentAt: Date.now(),
      })));
      this.seq = (this.seq + 1) >>> 0;
    } catch (err) {
      this.logger.warn({ err }, 'gateway heartbeat not sent');
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
