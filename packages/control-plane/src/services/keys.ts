import { join } from 'node:path';
import { isValidId, newId, WrennError, writeFileAtomic } from '@wrenn/common';
import { hashSecret, newApiKey } from '../auth/secrets.ts';
import type { Db } from '../db/database.ts';
import type { ApiKeyRow } from '../db/schema.ts';
import type { AuditLog } from './audit.ts';

/** Who is calling: resolved from an API key by the HTTP edge, passed to every service call. */
export interface Caller {
  keyId: string;
  teamId: string;
  isAdmin: boolean;
}

export interface ApiKeyView {
  id: string;
  teamId: string;
  name: string;
  prefix: string;
  isAdmin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** The admin's team; also where `wrenn up`'s sandboxes live. */
export const ADMIN_TEAM = 'default';
export const ADMIN_KEY_FILE = 'admin-key';

const LAST_USED_RESOLUTION_MS = 60_000;

export class KeyService {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
    private readonly clock: () => number,
  ) {}

  /**
   * First start: creates the admin team and key, writes the key 0600 to `<dir>/admin-key`
   * and returns it so the caller prints it once. Later starts return null. The unique
   * key hash and the team primary key make two control planes racing on one PostgreSQL
   * database create at most one team; the check below keeps it at one admin key.
   */
  async bootstrapAdmin(dir: string): Promise<string | null> {
    const existing = await this.db.kysely
      .selectFrom('api_keys')
      .select('id')
      .where('is_admin', '=', 1)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (existing) return null;
    await this.ensureTeam(ADMIN_TEAM, 'Default team');
    const { key } = await this.insertKey(ADMIN_TEAM, 'admin', true);
    await writeFileAtomic(join(dir, ADMIN_KEY_FILE), `${key}\n`, 0o600);
    await this.audit.record({
      teamId: ADMIN_TEAM,
      actor: 'system',
      action: 'key.create',
      details: { admin: true },
    });
    return key;
  }

  async ensureTeam(id: string, name = id): Promise<void> {
    if (!isValidId(id)) throw new WrennError('invalid_argument', `invalid team id '${id}'`);
    await this.db.kysely
      .insertInto('teams')
      .values({ id, name, created_at: this.clock() })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  }

  /** Resolves a presented key; unknown and revoked keys are the same 401 to the caller. */
  async authenticate(rawKey: string | undefined): Promise<Caller> {
    if (!rawKey)
      throw new WrennError(
        'unauthenticated',
        'missing API key: send X-API-Key or Authorization: Bearer',
      );
    const row = await this.db.kysely
      .selectFrom('api_keys')
      .select(['id', 'team_id', 'is_admin', 'last_used_at'])
      .where('key_hash', '=', hashSecret(rawKey))
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row) throw new WrennError('unauthenticated', 'invalid or revoked API key');
    const now = this.clock();
    // Coarse last-used stamp: one write a minute per key, not one per request.
    if (row.last_used_at === null || now - Number(row.last_used_at) > LAST_USED_RESOLUTION_MS) {
      await this.db.kysely
        .updateTable('api_keys')
        .set({ last_used_at: now })
        .where('id', '=', row.id)
        .execute();
    }
    return { keyId: row.id, teamId: row.team_id, isAdmin: row.is_admin === 1 };
  }

  /** Non-admins create keys for their own team; the admin may name (and so create) a team. */
  async create(
    caller: Caller,
    input: { name: string; teamId?: string },
  ): Promise<{ key: string; info: ApiKeyView }> {
    const teamId = input.teamId ?? caller.teamId;
    if (teamId !== caller.teamId && !caller.isAdmin) {
      throw new WrennError(
        'permission_denied',
        'only the admin key can create keys for another team',
      );
    }
    await this.ensureTeam(teamId);
    const { key, row } = await this.insertKey(teamId, input.name, false);
    await this.audit.record({
      teamId,
      actor: caller.keyId,
      action: 'key.create',
      targetId: row.id,
    });
    return { key, info: keyView(row) };
  }

  async list(caller: Caller): Promise<ApiKeyView[]> {
    const rows = await this.db.kysely
      .selectFrom('api_keys')
      .selectAll()
      .where('team_id', '=', caller.teamId)
      .orderBy('created_at', 'asc')
      .execute();
    return rows.map(keyView);
  }

  async revoke(caller: Caller, keyId: string): Promise<ApiKeyView> {
    let q = this.db.kysely.selectFrom('api_keys').selectAll().where('id', '=', keyId);
    if (!caller.isAdmin) q = q.where('team_id', '=', caller.teamId);
    const row = await q.executeTakeFirst();
    if (!row) throw new WrennError('not_found', `API key '${keyId}' not found`);
    if (row.revoked_at !== null)
      throw new WrennError('conflict', `API key '${keyId}' is already revoked`);
    const now = this.clock();
    await this.db.kysely
      .updateTable('api_keys')
      .set({ revoked_at: now })
      .where('id', '=', keyId)
      .execute();
    await this.audit.record({
      teamId: row.team_id,
      actor: caller.keyId,
      action: 'key.revoke',
      targetId: keyId,
    });
    return keyView({ ...row, revoked_at: now });
  }

  private async insertKey(teamId: string, name: string, isAdmin: boolean) {
    const key = newApiKey();
    const row: ApiKeyRow = {
      id: newId(12),
      team_id: teamId,
      name,
      key_hash: hashSecret(key),
      prefix: key.slice(0, 10),
      is_admin: isAdmin ? 1 : 0,
      created_at: this.clock(),
      last_used_at: null,
      revoked_at: null,
    };
    await this.db.kysely.insertInto('api_keys').values(row).execute();
    return { key, row };
  }
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(Number(ms)).toISOString();
}

function keyView(r: ApiKeyRow): ApiKeyView {
  return {
    id: r.id,
    teamId: r.team_id,
    name: r.name,
    prefix: r.prefix,
    isAdmin: r.is_admin === 1,
    createdAt: iso(r.created_at)!,
    lastUsedAt: iso(r.last_used_at),
    revokedAt: iso(r.revoked_at),
  };
}
