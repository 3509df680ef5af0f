import type { Command } from 'commander';
import { addApiOptions, clientFor } from '../client-config.ts';
import { output, printTable } from '../output.ts';

/** `wrenn keys [ls|create|revoke]`. */
export function registerKeysCommands(program: Command): void {
  const k = program.command('keys').alias('key').description('API keys');
  addApiOptions(k.command('ls', { isDefault: true }).alias('list'))
    .description("list the team's keys (never the keys themselves)")
    .action(async (o, cmd: Command) => {
      const keys = await clientFor(cmd).keys.list();
      output(o.json, keys, () =>
        printTable(
          keys.map((x) => ({
            id: x.id,
            name: x.name,
            prefix: `${x.prefix}…`,
            team: x.teamId,
            admin: x.isAdmin,
            created: x.createdAt,
            lastUsed: x.lastUsedAt,
            revoked: x.revokedAt,
          })),
          ['id', 'name', 'prefix', 'team', 'admin', 'created', 'lastUsed', 'revoked'],
        ),
      );
    });
  addApiOptions(k.command('create').argument('<name>'))
    .description('create a key; it is printed once and never shown again')
    .option('--team <id>', 'admin only: create it in (and if needed create) this team')
    .action(async (name: string, o, cmd: Command) => {
      const r = await clientFor(cmd).keys.create({ name, teamId: o.team });
      output(o.json, r, () => process.stdout.write(`${r.key}\n`));
    });
  addApiOptions(k.command('revoke').argument('<key-id>'))
    .description('revoke a key')
    .action(async (id: string, o, cmd: Command) => {
      const r = await clientFor(cmd).keys.revoke(id);
      output(o.json, r, () => process.stdout.write(`${id} revoked\n`));
    });
}
