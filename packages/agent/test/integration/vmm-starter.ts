// Started as a child process by vmm-qemu.test.ts: starts a clone with its own QemuDriver,
// writes the VmRef, then waits to be SIGKILLed — the VM must outlive it.
import { writeFile } from 'node:fs/promises';
import type { VmSpec } from '../../src/vmm/driver.ts';
import { QemuDriver } from '../../src/vmm/qemu/index.ts';

const { spec, templateDir, refFile, accel } = JSON.parse(process.argv[2]!) as {
  spec: VmSpec;
  templateDir: string;
  refFile: string;
  accel: 'tcg' | 'kvm';
};
const driver = new QemuDriver({ accel });
const ref = await driver.start(spec, { kind: 'template', snapshotDir: templateDir });
await writeFile(`${refFile}.tmp`, JSON.stringify(ref));
const { rename } = await import('node:fs/promises');
await rename(`${refFile}.tmp`, refFile);
setInterval(() => {}, 60_000);
