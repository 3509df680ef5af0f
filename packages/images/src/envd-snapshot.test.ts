import { qemuArgs } from '@wrenn/agent/vmm/qemu/args.ts';
import { describe, expect, it } from 'vitest';
import { TCG_CPU_MODEL } from './qemu.ts';

describe('envd startup snapshot CPU model', () => {
  // V8 refuses a snapshot made on other CPU features: sandboxes must get the build VM's model.
  it('is the -cpu the agent gives TCG sandboxes', () => {
    const args = qemuArgs({ accel: 'tcg', vcpus: 1, memoryMb: 512, kernel: 'k', cmdline: '' });
    expect(args[args.indexOf('-cpu') + 1]).toBe(TCG_CPU_MODEL);
  });
});
