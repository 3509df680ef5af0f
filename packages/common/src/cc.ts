import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/**
 * Compile `source` with the machine's C compiler (`cc <flags> -o out source`). A failure
 * names the source and carries the compiler's own words.
 */
export async function compileC(source: string, out: string, flags: string[]): Promise<void> {
  await execFileP('cc', [...flags, '-o', out, source]).catch(
    (e: { stderr?: string; message: string }) => {
      throw new Error(`compiling ${source} failed: ${(e.stderr || e.message).trim()}`);
    },
  );
}
