/** The API's routes about the daemon itself: OpenAPI, /metrics, tokens, status, capacity, doctor. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parse } from '../request.js';
import { FerryError } from '../../util/errors.js';
import { openApiJson, openApiYaml } from '../openapi.js';
import type { DaemonFacts, HubOptions } from '../options.js';
import type { VolumeService } from '../../volumes/service.js';
import type { Cluster } from '../../cluster/cluster.js';
import type { BackupService } from '../../backup/service.js';
import type * as W from '../../wire/types.js';

const tokenBody = z.strictObject({ role: z.enum(['read', 'admin'], { message: 'role must be read or admin' }), name: z.string().optional() });

export function hubRoutes(app: FastifyInstance, d: { service: VolumeService; facts: DaemonFacts; hub: HubOptions; cluster?: Cluster | undefined; backups?: BackupService | undefined }): void {
  const { service, facts, hub, cluster, backups } = d;
  app.get('/v1/openapi.yaml', async (_req, reply) => reply.type('application/yaml; charset=utf-8').send(await openApiYaml()));
  app.get('/v1/openapi.json', async () => openApiJson());

  if (hub.metrics) {
    const metrics = hub.metrics;
    app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  }

  if (hub.tokens) {
    const tokens = hub.tokens;
    const local = { config: { localOnly: true } };
    app.get('/v1/tokens', local, async () => ({ tokens: tokens.list() }));
    app.post('/v1/tokens', local, async (req, reply) => {
      const b = parse(tokenBody, req.body ?? {}, 'request body');
      return reply.code(201).send(await tokens.create(b.role, b.name));
    });
    // :token, not :name: the preHandler above looks every :name up as a volume
    app.delete<{ Params: { token: string } }>('/v1/tokens/:token', local, async (req) => ({ removed: await tokens.remove(req.params.token) }));
  }

  app.get('/v1/status', async (req): Promise<W.Status> => ({
    ...facts,
    warnings: facts.warnings?.list() ?? [],
    uptimeSeconds: Math.round((Date.now() - Date.parse(facts.startedAt)) / 1000),
    pools: await service.poolStatus(),
    counts: service.counts(),
    ...(backups?.targetProblems().length ? { targetProblems: backups.targetProblems() } : {}),
    cluster: cluster?.active
      ? { ...cluster.settings, nodes: await cluster.nodes(), attachments: [...(await service.attachmentsByVolume()).values()].flat() }
      : null,
    ...(req.token ? { token: { name: req.token.name, role: req.token.role } } : {}),
  }));

  app.get('/v1/capacity', async (): Promise<W.CapacityHistory> => {
    if (!hub.capacity) throw new FerryError('unavailable', 'this ferryd keeps no capacity history');
    return hub.capacity();
  });

  app.get('/v1/doctor', async (): Promise<{ checks: W.DoctorCheck[] }> => {
    if (!hub.doctor) throw new FerryError('unavailable', 'this ferryd does not run doctor checks');
    return { checks: await hub.doctor() };
  });
}
