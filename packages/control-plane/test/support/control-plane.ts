import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@wrenn/common';
import {
  type RunningControlPlane,
  type StartControlPlaneOptions,
  startControlPlane,
} from '../../src/index.ts';
import type { TestPostgres } from './postgres.ts';

export type DialectName = 'sqlite' | 'postgres';

/** A clock tests move by hand: no test waits for wall-clock time to pass. */
export class ManualClock {
  constructor(public ms = Date.UTC(2026, 0, 1)) {}
  now = () => this.ms;
  advance(ms: number) {
    this.ms += ms;
  }
}

export interface TestControlPlane {
  cp: RunningControlPlane;
  url: string;
  adminKey: string;
  clock: ManualClock;
  dir: string;
  /** JSON request helper: `api('POST', '/v1/sandboxes', { key, body })`. */
  api(
    method: string,
    path: string,
    opts?: { key?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

let dbCounter = 0;

export async function startTestControlPlane(
  dialect: DialectName,
  pg: TestPostgres | undefined,
  opts: Partial<StartControlPlaneOptions> = {},
): Promise<TestControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-cp-'));
  let databaseUrl: string | undefined;
  if (dialect === 'postgres') {
    if (!pg) throw new Error('postgres dialect requested without a running test PostgreSQL');
    databaseUrl = await pg.createDatabase(`wrenn_${process.pid}_${++dbCounter}`);
  }
  const clock = new ManualClock(Date.now());
  const cp = await startControlPlane({
    dir,
    databaseUrl: databaseUrl ?? '',
    port: 0,
    log: createLogger('test', 'silent'),
    clock: clock.now,
    reconcile: false,
    ...opts,
  });
  if (!cp.adminKey) throw new Error('a fresh control plane must create an admin key');
  const adminKey = cp.adminKey;
  return {
    cp,
    url: cp.url,
    adminKey,
    clock,
    dir,
    async api(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      const key = o.key === undefined ? adminKey : o.key;
      if (key) headers['x-api-key'] = key;
      let body: string | undefined;
      if (o.raw !== undefined) {
        body = o.raw;
        headers['content-type'] ??= 'application/json';
      } else if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        headers['content-type'] = 'application/json';
      }
      const res = await fetch(`${cp.url}${path}`, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // non-JSON (file content): keep text
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async close() {
      await cp.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
