import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../../src/db/database.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

// Starting PostgreSQL, envd and servers takes seconds on a busy 2-core machine: hooks get room.
vi.setConfig({ hookTimeout: 120_000 });

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

describe.each(['sqlite', 'postgres'] as const)('database on %s', (dialect) => {
  let dir: string;
  let url = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wrenn-db-'));
    if (dialect === 'postgres') url = await pg.createDatabase(`wrenn_db_${process.pid}`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('migrates on open, and opening again (a restart, a second control plane) is a no-op', async () => {
    const first = await openDatabase({ dir, databaseUrl: url });
    expect(first.dialect).toBe(dialect);
    await first.kysely
      .insertInto('teams')
      .values({ id: 'keep', name: 'kept across restarts', created_at: 1 })
      .execute();
    await first.close();
    const again = await openDatabase({ dir, databaseUrl: url });
    const teams = await again.kysely.selectFrom('teams').selectAll().execute();
    expect(teams).toEqual([{ id: 'keep', name: 'kept across restarts', created_at: 1 }]);
    const applied = await again.kysely
      .selectFrom('kysely_migration' as never)
      .select('name' as never)
      .execute();
    expect(applied).toEqual([{ name: '0001_initial' }]);
    await again.close();
  });

  it('returns epoch-ms bigints as numbers, exactly', async () => {
    const db = await openDatabase({ dir, databaseUrl: url });
    const ts = 1_795_910_673_875; // beyond 2^31: needs bigint, must come back as a number
    await db.kysely
      .insertInto('audit_log')
      .values({
        team_id: null,
        actor: 't',
        action: 'a',
        target_id: null,
        details: '{}',
        created_at: ts,
      })
      .execute();
    const row = await db.kysely
      .selectFrom('audit_log')
      .select(['id', 'created_at'])
      .executeTakeFirstOrThrow();
    expect(row.created_at).toBe(ts);
    expect(typeof row.id).toBe('number');
    await db.close();
  });
});

describe('SQLite file', () => {
  it('is created owner-only, as it holds host tokens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wrenn-db-mode-'));
    const db = await openDatabase({ dir, databaseUrl: '' });
    await db.kysely.selectFrom('teams').selectAll().execute();
    expect(statSync(join(dir, 'wrenn.db')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'wrenn.db-wal')).mode & 0o777).toBe(0o600);
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('database selection', () => {
  it('rejects a DATABASE_URL that is neither empty nor postgres://', async () => {
    await expect(openDatabase({ dir: tmpdir(), databaseUrl: 'mysql://x' })).rejects.toThrow(
      /DATABASE_URL must start with postgres/,
    );
  });
});
