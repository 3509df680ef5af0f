import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WrennError, wrennDir } from '@wrenn/common';
import { WrennClient } from '@wrenn/sdk/client.ts';
import type { Command } from 'commander';

/** The `$WRENN_DIR/env` file `wrenn up` writes: `export NAME=value` lines. */
export const ENV_FILE = 'env';

export function readEnvFile(dir: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(join(dir, ENV_FILE), 'utf8');
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(?:export\s+)?([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/** Options every API command takes; flags win over the environment, which wins over `$WRENN_DIR/env`. */
export function addApiOptions(cmd: Command): Command {
  return cmd
    .option('--api-url <url>', 'control plane URL (default: $WRENN_API_URL, then $WRENN_DIR/env)')
    .option('--api-key <key>', 'API key (default: $WRENN_API_KEY, then $WRENN_DIR/env)')
    .option('--json', 'machine-readable JSON output', false);
}

/** Walks up to the root command so global options (`--dir`) are visible to subcommands. */
export function allOpts(cmd: Command): Record<string, any> {
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.unshift(c);
  return Object.assign({}, ...chain.map((c) => c.opts()));
}

export function clientFor(cmd: Command): WrennClient {
  const o = allOpts(cmd);
  const fromFile = readEnvFile(wrennDir(o.dir));
  // `||`, not `??`: an empty variable counts as unset.
  const apiUrl = o.apiUrl || process.env.WRENN_API_URL || fromFile.WRENN_API_URL;
  const apiKey = o.apiKey || process.env.WRENN_API_KEY || fromFile.WRENN_API_KEY;
  if (!apiUrl || !apiKey) {
    throw new WrennError(
      'invalid_argument',
      'no API URL/key: run `wrenn up`, or set WRENN_API_URL and WRENN_API_KEY (or --api-url/--api-key)',
    );
  }
  const sandboxUrl = process.env.E2B_SANDBOX_URL || fromFile.E2B_SANDBOX_URL || undefined;
  return new WrennClient({ apiUrl, apiKey, sandboxUrl });
}
