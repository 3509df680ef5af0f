import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from './migrations.ts';
import type { Database } from './schema.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface Db {
  kysely: Kysely<Database>;
  dialect: Dialect;
  /** Where the data lives, without credentials (for logs and `wrenn up`). */
  location: string;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** postgres://… selects PostgreSQL; otherwise SQLite at `<dir>/wrenn.db`. */
  databaseUrl?: string;
  dir: string;
}

// int8 (bigint) and numeric come back from pg as strings by default; every bigint column
// here is an epoch-ms timestamp or a byte count, well inside Number's exact range.
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

/** Opens the database and brings its schema to the latest migration before returning. */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<Db> {
  const url = opts.databaseUrl;
  if (url && /^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: 10, types: pgTypes });
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    await migrateToLatest(kysely, 'postgres');
    const u = new URL(url);
    return {
      kysely,
      dialect: 'postgres',
      location: `postgresql://${u.host}${u.pathname}`,
      close: () => kysely.destroy(),
    };
  }
  if (url)
    throw new Error(
      `DATABASE_URL must start with postgres:// or postgresql:// (got ${url.split(':')[0]}:…)`,
    );

  mkdirSync(opts.dir, { recursive: true });
  const file = join(opts.dir, 'wrenn.db');
  // The database holds host tokens: owner-only, like the admin key (SQLite gives its -wal
  // and -shm files the main file's mode).
  closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
  const sqlite = new SQLite(file);
  // WAL: readers never block the writer; NORMAL sync is durable across process crashes.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrateToLatest(kysely, 'sqlite');
  return { kysely, dialect: 'sqlite', location: file, close: () => kysely.destroy() };
}
