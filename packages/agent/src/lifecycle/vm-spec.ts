import type { Manager } from '../manager.ts';
import type { Sandbox } from '../sandbox.ts';
import { sandboxPaths } from '../store.ts';
import type { Template } from '../templates.ts';
import type { VmSpec } from '../vmm/driver.ts';

/** The VM of a sandbox: its size, its template's kernel, its overlay, its slot's port. */
export function vmSpecOf(
  m: Manager,
  sb: Sandbox,
  tpl: Pick<Template, 'kernel' | 'initrd' | 'cmdline'>,
): VmSpec {
  const p = sandboxPaths(m.dir, sb.id);
  return {
    vmId: sb.id,
    runDir: p.runDir,
    vcpus: sb.vcpus,
    memoryMb: sb.memoryMb,
    kernel: tpl.kernel,
    initrd: tpl.initrd,
    ...(tpl.cmdline || m.cmdline
      ? { cmdline: [tpl.cmdline, m.cmdline].filter(Boolean).join(' ') }
      : {}),
    overlay: p.overlay,
    network: { kind: 'user', envdHostPort: m.slots.envdPort(sb.slot) },
  };
}
