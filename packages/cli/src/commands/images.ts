import { wrennDir } from '@wrenn/common';
import {
  buildImage,
  IMAGE_NAMES,
  IMAGES,
  listImages,
  quietProgress,
  terminalProgress,
} from '@wrenn/images';
import type { Command } from 'commander';
import { output, printTable } from '../output.ts';

const dirOf = (cmd: Command) => wrennDir(cmd.optsWithGlobals().dir);
const mib = (n?: number) => (n === undefined ? undefined : `${Math.round(n / (1 << 20))} MiB`);

/** `wrenn images build <name>` and `wrenn images ls`: Wrenn's own guest images. */
export function registerImagesCommands(program: Command): void {
  const images = program
    .command('images')
    .alias('image')
    .description('guest images (kernel, initramfs, rootfs)');

  images
    .command('build')
    .argument('<name>', `image to build: ${IMAGE_NAMES.join(', ')}`)
    .option('-q, --quiet', 'no progress display (CI)', false)
    .option('--force', 'rebuild even when nothing changed', false)
    .description(
      `build an image into WRENN_DIR/images/public/<name>/ (a no-op when its inputs did not change)\n${IMAGE_NAMES.map((n) => `  ${n}: ${IMAGES[n].description}`).join('\n')}`,
    )
    .action(async (name: string, o: { quiet: boolean; force: boolean }, cmd: Command) => {
      const result = await buildImage(name, {
        dir: dirOf(cmd),
        progress: o.quiet ? quietProgress : terminalProgress(),
        force: o.force,
      });
      const m = result.manifest;
      process.stdout.write(
        `${m.name}: ${result.status}${result.reason ? ` (${result.reason})` : ''} ${result.imageDir}/${m.rootfs.path} kernel ${m.kernel.release}\n`,
      );
    });

  images
    .command('ls', { isDefault: true })
    .alias('list')
    .option('--json', 'machine-readable output', false)
    .description('list built images and whether each is complete')
    .action(async (o: { json: boolean }, cmd: Command) => {
      const list = await listImages(dirOf(cmd));
      output(
        o.json,
        list.map((i) => ({
          team: i.team,
          name: i.name,
          valid: i.valid,
          dir: i.dir,
          diskBytes: i.diskBytes,
          builtAt: i.manifest?.builtAt,
          kernel: i.manifest?.kernel.release,
          rootfsBytes: i.manifest?.rootfs.bytes,
          rootfsSha256: i.manifest?.rootfs.sha256,
          inputsHash: i.manifest?.inputsHash,
        })),
        () =>
          printTable(
            list.map((i) => ({
              team: i.team,
              name: i.name,
              status: i.valid ? 'ready' : 'incomplete',
              kernel: i.manifest?.kernel.release,
              disk: mib(i.diskBytes),
              built: i.manifest?.builtAt,
              inputs: i.manifest?.inputsHash.slice(0, 12),
            })),
            ['team', 'name', 'status', 'kernel', 'disk', 'built', 'inputs'],
          ),
      );
    });
}
