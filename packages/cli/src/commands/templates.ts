import type { Command } from 'commander';
import { addApiOptions, clientFor } from '../client-config.ts';
import { output, printTable } from '../output.ts';

/** `wrenn templates [ls|rm|snapshot]`. */
export function registerTemplatesCommands(program: Command): void {
  const t = program
    .command('templates')
    .alias('template')
    .description('templates: built-in images and snapshots of sandboxes');
  addApiOptions(t.command('ls', { isDefault: true }).alias('list'))
    .description("list the team's templates and the public built-ins")
    .action(async (o, cmd: Command) => {
      const list = await clientFor(cmd).templates.list();
      output(o.json, list, () =>
        printTable(
          list.map((x) => ({
            id: x.templateId,
            team: x.teamId,
            kind: x.kind,
            vcpus: x.vcpus,
            memoryMb: x.memoryMb,
            diskMb: x.diskMb,
            host: x.hostId,
            created: x.createdAt,
          })),
          ['id', 'team', 'kind', 'vcpus', 'memoryMb', 'diskMb', 'host', 'created'],
        ),
      );
    });
  addApiOptions(t.command('snapshot').argument('<sandbox-id>').argument('<template-id>'))
    .description('snapshot a running sandbox into a new template (the sandbox keeps running)')
    .action(async (sandboxId: string, templateId: string, o, cmd: Command) => {
      const tpl = await clientFor(cmd).templates.snapshot(sandboxId, templateId);
      output(o.json, tpl, () => process.stdout.write(`${tpl.templateId}\n`));
    });
  addApiOptions(t.command('rm').alias('delete').argument('<template-id>'))
    .description("delete one of the team's templates")
    .action(async (id: string, o, cmd: Command) => {
      await clientFor(cmd).templates.delete(id);
      output(o.json, { templateId: id, deleted: true }, () =>
        process.stdout.write(`${id} deleted\n`),
      );
    });
}
