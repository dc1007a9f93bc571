// Forks a child process that answers numbered calls over IPC, without it keeping ferryd alive.
import { fork, type ChildProcess } from 'node:child_process';

/** What the child answers to a call `{ id, op, args }`. */
export interface ChildAnswer {
  id: number;
  value?: unknown;
  error?: { code?: string; message: string };
}

/**
 * Starts `script` with an IPC channel; `onAnswer` gets each answer (an error rebuilt with its errno
 * `code`), `onExit` the child's end. Neither the child nor its channel keeps ferryd's event loop alive.
 */
export function forkCallee(script: string, serialization: 'json' | 'advanced', onAnswer: (id: number, value: unknown, err: Error | undefined) => void, onExit: () => void): ChildProcess {
  const child = fork(script, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [], serialization });
  child.unref();
  (child as unknown as { channel?: { unref(): void } }).channel?.unref();
  child.on('message', (m: ChildAnswer) => {
    const err = m.error ? Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}) : undefined;
    onAnswer(m.id, m.value, err);
  });
  child.on('error', () => undefined);
  child.on('exit', onExit);
  return child;
}
