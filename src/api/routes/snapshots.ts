/** The API's snapshot and history routes: snapshots (as jobs too), restore, commits, log, branches, checkout, reset. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { flag, parse } from '../request.js';
import type { SnapshotService } from '../../snapshots/service.js';
import type { JobRegistry } from '../../jobs/jobs.js';
import type * as W from '../../wire/types.js';

const snapshotBody = z.strictObject({ name: z.string().optional(), pause: z.boolean().optional(), exec: z.string().min(1).optional(), background: z.boolean().optional() });
const restartBody = z.strictObject({ restartContainers: z.boolean().optional(), force: z.boolean().optional() });
const commitBody = z.strictObject({ message: z.string() });
const branchBody = z.strictObject({ name: z.string() });
const checkoutBody = z.strictObject({ branch: z.string(), create: z.boolean().optional(), restartContainers: z.boolean().optional(), force: z.boolean().optional() });
const resetBody = z.strictObject({ ref: z.string(), hard: z.literal(true, { message: 'only hard resets exist: pass "hard": true' }), restartContainers: z.boolean().optional(), force: z.boolean().optional() });
const listSnapshotsQuery = z.strictObject({ all: flag });
const logQuery = z.strictObject({ branch: z.string().optional() });
const deleteBranchQuery = z.strictObject({ force: flag });

export function snapshotRoutes(app: FastifyInstance, snapshots: SnapshotService, jobs: JobRegistry | undefined): void {
  type Vol = { Params: { name: string } };
  type Snap = { Params: { name: string; ref: string } };
  app.get<Vol>('/v1/volumes/:name/snapshots', async (req): Promise<W.SnapshotList> => ({ snapshots: await snapshots.list(req.params.name, parse(listSnapshotsQuery, req.query, 'query')) }));
  app.post<Vol>('/v1/volumes/:name/snapshots', async (req, reply) => {
    const { background, ...b } = parse(snapshotBody, req.body ?? {}, 'request body');
    if (background && jobs) {
      // a job: answered at once (after what would be refused at once), followed at GET /v1/jobs/ID
      await snapshots.checkCreate(req.params.name, b);
      const job: W.Job = jobs.start('snapshot', req.params.name, (report) => snapshots.create(req.params.name, { ...b, onProgress: report }));
      return reply.code(202).send(job);
    }
    const s: W.Snapshot = await snapshots.create(req.params.name, b);
    return reply.code(201).send(s);
  });
  app.get<Snap>('/v1/volumes/:name/snapshots/:ref', async (req): Promise<W.Snapshot> => snapshots.get(req.params.name, req.params.ref));
  app.delete<Snap>('/v1/volumes/:name/snapshots/:ref', async (req) => ({ removed: await snapshots.remove(req.params.name, req.params.ref) }));
  app.post<Snap>('/v1/volumes/:name/snapshots/:ref/restore', async (req) => {
    const b = parse(restartBody, req.body ?? {}, 'request body');
    return { restored: await snapshots.restore(req.params.name, req.params.ref, b) };
  });
  app.post<Vol>('/v1/volumes/:name/commits', async (req, reply) => reply.code(201).send(await snapshots.commit(req.params.name, parse(commitBody, req.body ?? {}, 'request body').message)));
  app.get<Vol>('/v1/volumes/:name/log', async (req): Promise<W.CommitLog> => snapshots.log(req.params.name, parse(logQuery, req.query, 'query').branch));
  app.get<Vol>('/v1/volumes/:name/branches', async (req): Promise<W.BranchList> => snapshots.branches(req.params.name));
  app.post<Vol>('/v1/volumes/:name/branches', async (req, reply) => reply.code(201).send(await snapshots.createBranch(req.params.name, parse(branchBody, req.body ?? {}, 'request body').name)));
  app.delete<{ Params: { name: string; branch: string } }>('/v1/volumes/:name/branches/:branch', async (req): Promise<W.BranchDeleted> => snapshots.deleteBranch(req.params.name, req.params.branch, parse(deleteBranchQuery, req.query, 'query')));
  app.post<Vol>('/v1/volumes/:name/checkout', async (req) => {
    const b = parse(checkoutBody, req.body ?? {}, 'request body');
    return snapshots.checkout(req.params.name, b.branch, b);
  });
  app.post<Vol>('/v1/volumes/:name/reset', async (req) => {
    const b = parse(resetBody, req.body ?? {}, 'request body');
    return { commit: await snapshots.reset(req.params.name, b.ref, b) };
  });
}
