/** The API's backup and job routes: init, back up (a job), list, inspect, remove, restore, prune, verify; jobs. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { flag, parse } from '../request.js';
import type { BackupService } from '../../backup/service.js';
import type { JobRegistry } from '../../jobs/jobs.js';
import type * as W from '../../wire/types.js';

type Vol = { Params: { name: string } };

const targetBody = z.strictObject({ target: z.string().min(1) });
const initBody = z.strictObject({ target: z.string().min(1), encryption: z.enum(['aes-256-gcm', 'none']).optional() });
const backupBody = z.strictObject({ target: z.string().min(1), snapshot: z.string().min(1).optional() });
const backupListQuery = z.strictObject({ target: z.string().min(1), volume: z.string().optional() });
const urlQuery = z.strictObject({ url: z.string().min(1) });
const restoreBackupBody = z.strictObject({ url: z.string().min(1), volume: z.string(), options: z.record(z.string(), z.string()).optional() });
const verifyBody = z.strictObject({ target: z.string().min(1), readData: z.boolean().optional() });
const waitQuery = z.strictObject({ wait: flag });

export function backupRoutes(app: FastifyInstance, backups: BackupService, jobs: JobRegistry): void {
  app.get('/v1/jobs', async (): Promise<W.JobList> => ({ jobs: jobs.list() }));
  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (req): Promise<W.Job> => {
    const q = parse(waitQuery, req.query, 'query');
    return q.wait ? jobs.wait(jobs.get(req.params.id).id) : jobs.get(req.params.id);
  });
  app.post('/v1/backups/init', async (req, reply) => {
    const b = parse(initBody, req.body ?? {}, 'request body');
    return reply.code(201).send(await backups.init(b.target, b.encryption ? { encryption: b.encryption } : {}));
  });
  app.post<Vol>('/v1/volumes/:name/backups', async (req, reply) => {
    const b = parse(backupBody, req.body ?? {}, 'request body');
    const job: W.Job = await backups.startBackup(req.params.name, b);
    return reply.code(202).send(job);
  });
  app.get('/v1/backups', async (req): Promise<W.BackupList> => {
    const q = parse(backupListQuery, req.query, 'query');
    return backups.list(q.target, q.volume);
  });
  app.get('/v1/backups/inspect', async (req) => backups.inspect(parse(urlQuery, req.query, 'query').url));
  app.delete('/v1/backups', async (req) => backups.remove(parse(urlQuery, req.query, 'query').url));
  app.post('/v1/backups/restore', async (req, reply) => {
    const b = parse(restoreBackupBody, req.body ?? {}, 'request body');
    return reply.code(202).send(await backups.startRestore(b.url, b.volume, b.options ?? {}));
  });
  app.post('/v1/backups/prune', async (req, reply) => reply.code(202).send(backups.startPrune(parse(targetBody, req.body ?? {}, 'request body').target)));
  app.post('/v1/backups/verify', async (req, reply) => {
    const b = parse(verifyBody, req.body ?? {}, 'request body');
    return reply.code(202).send(backups.startVerify(b.target, b.readData ?? false));
  });
}
