import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '@wrenn/common';

/**
 * A throwaway PostgreSQL 15 cluster for tests: initdb + pg_ctl as the `postgres` user in a
 * temp dir, on a free TCP port with its own unix socket dir. A missing PostgreSQL fails
 * loudly — tests never silently skip the second database.
 */
const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface TestPostgres {
  url: string;
  /** A fresh, empty database in the same cluster (one per test group keeps them isolated). */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

function asPostgres(args: string[]): string {
  // CI runs as root and initdb refuses root; as a non-root user run the tools directly.
  const root = process.getuid?.() === 0;
  const cmd = root ? 'runuser' : args[0]!;
  const argv = root ? ['-u', 'postgres', '--', ...args] : args.slice(1);
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout || r.error}`);
  }
  return r.stdout;
}

export async function startPostgres(): Promise<TestPostgres> {
  if (!existsSync(join(PG_BIN, 'initdb'))) {
    throw new Error(
      `PostgreSQL 15 is not installed (${PG_BIN}/initdb missing): run scripts/bootstrap.sh`,
    );
  }
  const base = mkdtempSync(join(tmpdir(), 'wrenn-pg-'));
  chmodSync(base, 0o777);
  const data = join(base, 'data');
  const sock = join(base, 'sock');
  asPostgres(['mkdir', '-p', sock]);
  const port = await freeLoopbackPort();
  asPostgres([
    join(PG_BIN, 'initdb'),
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  asPostgres([
    join(PG_BIN, 'pg_ctl'),
    '-D',
    data,
    '-w',
    '-l',
    join(base, 'log'),
    '-o',
    `-p ${port} -k ${sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
    'start',
  ]);
  const admin = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  return {
    url: admin,
    async createDatabase(name: string) {
      execFileSync(
        join(PG_BIN, 'psql'),
        ['-h', sock, '-p', String(port), '-U', 'postgres', '-c', `CREATE DATABASE "${name}"`],
        {
          stdio: 'pipe',
        },
      );
      return `postgresql://postgres@127.0.0.1:${port}/${name}`;
    },
    async stop() {
      try {
        asPostgres([join(PG_BIN, 'pg_ctl'), '-D', data, '-w', '-m', 'immediate', 'stop']);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    },
  };
}
