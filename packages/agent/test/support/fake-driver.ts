import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type {
  SnapshotMode,
  StartOptions,
  VmmDriver,
  VmRef,
  VmSource,
  VmSpec,
  VmStatus,
} from '../../src/vmm/driver.ts';

/**
 * A VMM driver for unit tests of the manager and the restore rules — never the proof that
 * a feature works (the VM tests are). Its "VM" is a real HTTP server on the slot's envd
 * port that answers /health and /init like envd, and a tiny "RAM" (a
 * counter and the /init bodies) that pause snapshots write and resume reads back.
 * VMs live in a registry shared by every FakeDriver of the process, so a second agent
 * (a restart) can re-adopt them.
 */
interface FakeVm {
  ref: VmRef;
  server: Server;
  state: 'running' | 'paused' | 'postmigrate';
  ram: { counter: number; inits: unknown[]; source: VmSource['kind'] };
}

const registry = new Map<number, FakeVm>();
let nextPid = 900_000_000;

export type FailPoint = 'start' | 'pause' | 'resume' | 'snapshotToDir' | 'kill' | 'forwardPort';

export class FakeDriver implements VmmDriver {
  readonly name = 'fake';
  readonly capabilities = { templateSnapshots: true, reAdopt: true };
  readonly calls: { op: string; vmId: string }[] = [];
  /** Next call of that op throws this error (once). */
  readonly failNext = new Map<FailPoint, Error>();
  /** envd answers /health only after this many polls (per VM start). */
  healthDelayPolls = 0;

  private fail(op: FailPoint): void {
    const e = this.failNext.get(op);
    if (e) {
      this.failNext.delete(op);
      throw e;
    }
  }

  vm(pid: number): FakeVm | undefined {
    return registry.get(pid);
  }

  static alive(): FakeVm[] {
    return [...registry.values()];
  }

  static async killAll(): Promise<void> {
    for (const vm of [...registry.values()]) {
      registry.delete(vm.ref.pid);
      await new Promise((r) => vm.server.close(r));
      vm.server.closeAllConnections();
    }
  }

  async start(spec: VmSpec, source: VmSource, opts: StartOptions = {}): Promise<VmRef> {
    this.calls.push({ op: 'start', vmId: spec.vmId });
    this.fail('start');
    let ram: FakeVm['ram'] = { counter: 0, inits: [], source: source.kind };
    if (source.kind === 'snapshot') {
      ram = {
        ...JSON.parse(await readFile(join(source.snapshotDir, 'memory'), 'utf8')),
        source: 'snapshot',
      };
    }
    const pid = nextPid++;
    const ref: VmRef = { vmId: spec.vmId, runDir: spec.runDir, pid, spec };
    let polls = 0;
    const vm: FakeVm = {
      ref,
      server: createServer(),
      state: opts.stopped ? 'paused' : 'running',
      ram,
    };
    vm.server.on('request', (req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (vm.state !== 'running') {
          res.destroy(); // a paused VM answers nothing
          return;
        }
        if (req.url === '/health') {
          polls++;
          res.writeHead(polls > this.healthDelayPolls ? 204 : 503).end();
        } else if (req.url === '/init') {
          vm.ram.inits.push(JSON.parse(body));
          res.writeHead(204).end();
        } else if (req.url === '/tick') {
          vm.ram.counter++;
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ counter: vm.ram.counter }));
        } else if (req.url?.startsWith('/slow')) {
          // Holds the request open until the connection is aborted (a long stream).
          res.writeHead(200);
          res.write('streaming\n');
        } else {
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ url: req.url, method: req.method, headers: req.headers, body }));
        }
      });
    });
    // WebSocket-style upgrades: answer 101 and echo every byte back.
    vm.server.on('upgrade', (_req, socket, head) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n',
      );
      if (head.length) socket.write(head);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve, reject) => {
      vm.server.once('error', reject);
      vm.server.listen(spec.network.envdHostPort, '127.0.0.1', () => resolve());
    });
    registry.set(pid, vm);
    return ref;
  }

  async adopt(ref: VmRef): Promise<VmRef | undefined> {
    this.calls.push({ op: 'adopt', vmId: ref.vmId });
    const vm = registry.get(ref.pid);
    return vm && vm.ref.vmId === ref.vmId ? vm.ref : undefined;
  }

  async pause(ref: VmRef): Promise<void> {
    this.calls.push({ op: 'pause', vmId: ref.vmId });
    this.fail('pause');
    this.must(ref).state = 'paused';
  }

  async resume(ref: VmRef): Promise<void> {
    this.calls.push({ op: 'resume', vmId: ref.vmId });
    this.fail('resume');
    this.must(ref).state = 'running';
  }

  async snapshotToDir(ref: VmRef, dir: string, mode: SnapshotMode) {
    this.calls.push({ op: 'snapshotToDir', vmId: ref.vmId });
    this.fail('snapshotToDir');
    const vm = this.must(ref);
    const memory = JSON.stringify(vm.ram);
    await writeFile(join(dir, 'memory'), memory);
    await writeFile(join(dir, 'vmstate'), `fake-vmstate ${mode}\n`);
    vm.state = 'postmigrate';
    return { files: ['vmstate', 'memory'], bytes: memory.length + 20 };
  }

  async forwardPort(ref: VmRef, guestPort: number): Promise<number> {
    this.calls.push({ op: 'forwardPort', vmId: ref.vmId });
    this.fail('forwardPort');
    // The fake guest has one server: every port reaches it.
    void guestPort;
    return ref.spec.network.envdHostPort;
  }

  async query(ref: VmRef): Promise<VmStatus> {
    const vm = registry.get(ref.pid);
    return vm ? { alive: true, state: vm.state } : { alive: false, state: 'gone' };
  }

  async kill(ref: VmRef): Promise<void> {
    this.calls.push({ op: 'kill', vmId: ref.vmId });
    this.fail('kill');
    const vm = registry.get(ref.pid);
    if (!vm) return;
    registry.delete(ref.pid);
    vm.server.closeAllConnections();
    await new Promise((r) => vm.server.close(r));
  }

  private must(ref: VmRef): FakeVm {
    const vm = registry.get(ref.pid);
    if (!vm) throw new Error(`fake VM ${ref.vmId} (pid ${ref.pid}) is not running`);
    return vm;
  }
}
