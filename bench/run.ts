import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * `npm run bench -- [name...]`: runs `bench/<name>.ts`'s exported `run()` for each name,
 * or every benchmark when none is named. Benchmarks are not tests: they print medians and
 * ratios against a floor measured in the same run, and fail only when they cannot measure.
 */
const here = dirname(fileURLToPath(import.meta.url));

async function available(): Promise<string[]> {
  return (await readdir(here))
    .filter(
      (f) => f.endsWith('.ts') && f !== 'run.ts' && !f.endsWith('.d.ts') && !f.startsWith('_'),
    )
    .map((f) => f.slice(0, -3))
    .sort();
}

async function main() {
  const all = await available();
  const names = process.argv.slice(2).filter((a) => a !== '--');
  for (const n of names) {
    if (!all.includes(n)) {
      process.stderr.write(`bench: unknown benchmark '${n}': available are ${all.join(', ')}\n`);
      process.exit(2);
    }
  }
  for (const name of names.length ? names : all) {
    const mod = (await import(pathToFileURL(join(here, `${name}.ts`)).href)) as {
      run?: () => Promise<unknown>;
    };
    if (typeof mod.run !== 'function') {
      // Shared helpers (e.g. vmm-floor.ts) live here too: skipped unless asked for by name.
      if (!names.length) continue;
      process.stderr.write(`bench: bench/${name}.ts exports no run()\n`);
      process.exit(2);
    }
    process.stdout.write(`\n== bench ${name}\n`);
    const figures = await mod.run();
    if (figures && typeof figures === 'object')
      process.stdout.write(`${JSON.stringify({ bench: name, ...figures })}\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
