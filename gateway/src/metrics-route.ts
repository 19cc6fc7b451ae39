// GET /metrics in Prometheus' text format, mounted with createGatewayApp's extraRoutes.
import type { Express } from 'express';
import type { Registry } from 'prom-client';

export function metricsRoute(registry: Registry): (app: Express) => void {
  return (app) =>
    app.get('/metrics', async (_req, res) => {
      res.set('Content-Type', registry.contentType);
      res.send(await registry.metrics());
    });
}
