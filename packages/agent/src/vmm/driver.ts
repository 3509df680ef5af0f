/**
 * The VMM port: everything the agent asks of a hypervisor. `qemu/` is one implementation;
 * nothing outside `vmm/` knows which VMM runs a sandbox. Drivers advertise capabilities
 * instead of being checked by name.
 */

export interface VmmCapabilities {
  /** Can start clones from a template snapshot (file-backed RAM mapped copy-on-write). */
  templateSnapshots: boolean;
  /** VMs run detached and can be re-adopted after the agent restarts. */
  reAdopt: boolean;
}

/** How the host reaches ports inside the guest. */
export interface VmNetwork {
  kind: 'user';
  /** Host loopback port forwarded to envd (49983) in the guest. */
  envdHostPort: number;
}

export interface VmSpec {
  /** The sandbox id; also names the VMM process. */
  vmId: string;
  /**
   * Directory the driver owns for this VM's runtime files (control socket, pidfile,
   * console log, driver state). INVARIANT: nothing else writes the driver's files there.
   */
  runDir: string;
  vcpus: number;
  memoryMb: number;
  kernel: string;
  initrd: string;
  /** Extra kernel command line appended to the driver's defaults. */
  cmdline?: string;
  /** Writable qcow2 overlay backed by the template's read-only base image. */
  overlay: string;
  network: VmNetwork;
}

/** Where a VM's state comes from. */
export type VmSource =
  | { kind: 'cold' }
  /** A template snapshot: RAM file mapped privately + small device state. */
  | { kind: 'template'; snapshotDir: string }
  /** A pause snapshot written by `snapshotToDir(..., 'full')`. */
  | { kind: 'snapshot'; snapshotDir: string };

export interface StartOptions {
  /** Leave the vCPUs stopped; resume() runs them. */
  stopped?: boolean;
}

/** A live VM the agent holds. Serializable: it is written into the sandbox's state file. */
export interface VmRef {
  vmId: string;
  runDir: string;
  pid: number;
  spec: VmSpec;
  /**
   * Set only while a template is being built: guest RAM is written through to this file,
   * which becomes the template's memory once saved (the VM must not run after that).
   */
  sharedMemoryFile?: string;
}

export type SnapshotMode =
  /** Everything needed to resume this VM later (RAM + device state). */
  | 'full'
  /** RAM stays in the template's shared memory file; only device state is written. */
  | 'template';

export interface SnapshotResult {
  /** Files written into the target directory, relative names. */
  files: string[];
  bytes: number;
}

export interface VmStatus {
  alive: boolean;
  /** VMM-reported run state, e.g. "running", "paused", "postmigrate". */
  state: string;
}

export interface VmmDriver {
  readonly name: string;
  readonly capabilities: VmmCapabilities;

  /**
   * Start a VM (cold boot or from a snapshot) and return once its VMM runs. With
   * `stopped`, the state is loaded but the vCPUs wait for resume(): a resume commits to
   * leaving its pause snapshot before the guest may write to the disk it shares with it.
   */
  start(spec: VmSpec, source: VmSource, opts?: StartOptions): Promise<VmRef>;
  /** Re-attach to a VM that outlived an agent restart; undefined when it is gone. */
  adopt(ref: VmRef): Promise<VmRef | undefined>;
  /** Stop the vCPUs (the VM keeps its memory). */
  pause(ref: VmRef): Promise<void>;
  /** Run the vCPUs again. */
  resume(ref: VmRef): Promise<void>;
  /**
   * Write the paused VM's state into `dir` (which the caller fsyncs and renames). The VM
   * must be paused (a running one is refused with failed_precondition). Afterwards it stays
   * stopped: kill it, or resume() it (e.g. to roll back a failed pause); saving it again
   * needs a resume() + pause() in between.
   */
  snapshotToDir(ref: VmRef, dir: string, mode: SnapshotMode): Promise<SnapshotResult>;
  /** Make a guest TCP port reachable on host loopback; returns the host port. */
  forwardPort(ref: VmRef, guestPort: number): Promise<number>;
  query(ref: VmRef): Promise<VmStatus>;
  /** Terminate the VMM process and remove its runtime files (not the overlay). */
  kill(ref: VmRef): Promise<void>;
}
