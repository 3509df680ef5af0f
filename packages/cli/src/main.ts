import { errorMessage, isWrennError } from '@wrenn/common';
import { Command } from 'commander';
import { registerAgentCommand } from './commands/agent.ts';
import { registerControlPlaneCommand } from './commands/control-plane.ts';
import { registerDoctorCommand } from './commands/doctor.ts';
import { registerHostsCommands } from './commands/hosts.ts';
import { registerImagesCommands } from './commands/images.ts';
import { registerKeysCommands } from './commands/keys.ts';
import { registerSandboxCommands } from './commands/sandbox.ts';
import { registerTemplatesCommands } from './commands/templates.ts';
import { registerUpCommand } from './commands/up.ts';

// Each command group lives in its own file under commands/ and registers itself here.
export async function main(argv: string[]): Promise<void> {
  const program = new Command('wrenn')
    .description('Wrenn: self-hostable microVM sandboxes for AI agents (E2B-compatible)')
    .option('--dir <path>', 'state directory (default: $WRENN_DIR or ~/.wrenn)')
    .showHelpAfterError();
  registerAgentCommand(program);
  registerUpCommand(program);
  registerControlPlaneCommand(program);
  registerSandboxCommands(program);
  registerTemplatesCommands(program);
  registerHostsCommands(program);
  registerKeysCommands(program);
  registerImagesCommands(program);
  registerDoctorCommand(program);

  try {
    await program.parseAsync(argv);
  } catch (e) {
    // One clear line, never a stack trace.
    const code = isWrennError(e) ? `${e.code}: ` : '';
    process.stderr.write(`wrenn: ${code}${errorMessage(e)}\n`);
    process.exitCode = process.exitCode || 1;
  }
}
