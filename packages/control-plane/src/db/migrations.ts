import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import type { Dialect } from './database.ts';

/**
 * Every schema change, in order. Migrations run at start (`openDatabase`) on SQLite and
 * PostgreSQL alike, so only portable DDL is used; a new change is a new entry, never an edit.
 */
const migrations = (dialect: Dialect): Record<string, Migration> => ({
  '0001_initial': {
    async up(db: Kysely<any>) {
      // bigint: epoch-ms timestamps and byte counts overflow a 32-bit PostgreSQL integer.
      await db.schema
        .createTable('teams')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('prefix', 'text', (c) => c.notNull())
        .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('api_keys_team').on('api_keys').column('team_id').execute();

      await db.schema
        .createTable('hosts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('agent_url', 'text', (c) => c.notNull())
        .addColumn('host_token', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('memory_mb', 'bigint', (c) => c.notNull())
        .addColumn('disk_mb', 'bigint', (c) => c.notNull())
        .addColumn('vcpus_used', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('memory_used_mb', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('disk_used_mb', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('sandboxes_running', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('sandboxes_paused', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('accelerator', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('last_heartbeat_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('registration_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('used_at', 'bigint')
        .addColumn('host_id', 'text')
        .execute();

      await db.schema
        .createTable('sandboxes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('team_id', 'text', (c) => c.notNull())
        .addColumn('host_id', 'text', (c) => c.notNull())
        .addColumn('template_id', 'text', (c) => c.notNull())
        .addColumn('template_team_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('memory_mb', 'integer', (c) => c.notNull())
        .addColumn('disk_mb', 'integer', (c) => c.notNull())
        .addColumn('timeout_seconds', 'integer', (c) => c.notNull())
        .addColumn('on_timeout', 'text', (c) => c.notNull())
        .addColumn('auto_resume', 'integer', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('envd_access_token', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('end_at', 'bigint')
        .addColumn('last_active_at', 'bigint', (c) => c.notNull())
        .addColumn('status_changed_at', 'bigint', (c) => c.notNull())
        .execute();
      // Listing pages through a team's sandboxes newest first.
      await db.schema
        .createIndex('sandboxes_team_created')
        .on('sandboxes')
        .columns(['team_id', 'created_at', 'id'])
        .execute();
      await db.schema
        .createIndex('sandboxes_host_status')
        .on('sandboxes')
        .columns(['host_id', 'status'])
        .execute();

      await db.schema
        .createTable('sandbox_metadata')
        .addColumn('sandbox_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('sandbox_metadata_pk', ['sandbox_id', 'key'])
        .execute();
      await db.schema
        .createIndex('sandbox_metadata_kv')
        .on('sandbox_metadata')
        .columns(['key', 'value', 'sandbox_id'])
        .execute();

      await db.schema
        .createTable('templates')
        .addColumn('team_id', 'text', (c) => c.notNull())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('host_id', 'text')
        .addColumn('source_sandbox_id', 'text')
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('memory_mb', 'integer', (c) => c.notNull())
        .addColumn('disk_mb', 'integer', (c) => c.notNull())
        .addColumn('size_bytes', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('templates_pk', ['team_id', 'id'])
        .execute();

      await db.schema
        .createTable('audit_log')
        // serial on PostgreSQL, INTEGER PRIMARY KEY (rowid alias) on SQLite.
        .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => c.primaryKey())
        .addColumn('team_id', 'text')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text')
        .addColumn('details', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('audit_team_id')
        .on('audit_log')
        .columns(['team_id', 'id'])
        .execute();

      await db.schema
        .createTable('metric_points')
        .addColumn('sandbox_id', 'text', (c) => c.notNull())
        .addColumn('ts', 'bigint', (c) => c.notNull())
        .addColumn('cpu_used_pct', 'real', (c) => c.notNull())
        .addColumn('cpu_count', 'integer', (c) => c.notNull())
        .addColumn('mem_used_bytes', 'bigint', (c) => c.notNull())
        .addColumn('mem_total_bytes', 'bigint', (c) => c.notNull())
        .addColumn('disk_used_bytes', 'bigint', (c) => c.notNull())
        .addColumn('disk_total_bytes', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('metric_points_pk', ['sandbox_id', 'ts'])
        .execute();
    },
  },
});

export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`database migration ${failed} failed: ${(error as Error).message ?? error}`, {
      cause: error,
    });
  }
}
