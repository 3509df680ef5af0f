import type { MessageInitShape } from '@bufbuild/protobuf';
import type { processv1 } from '@wrenn/proto';
import { CommandExitError, type Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type HostEnvd, rawClients, sdk, startHostEnvd } from '../helpers.ts';

let envd: HostEnvd;
let sbx: Sandbox;

beforeAll(async () => {
  envd = await startHostEnvd();
  sbx = sdk(envd);
});
afterAll(async () => {
  await envd?.stop();
});

describe('commands through the e2b SDK', () => {
  it('returns stdout, stderr and exit code 0', async () => {
    const r = await sbx.commands.run('echo out; echo err >&2');
    expect(r).toMatchObject({ exitCode: 0, stdout: 'out\n', stderr: 'err\n' });
  });

  it('throws CommandExitError carrying the non-zero exit code and output', async () => {
    const e = await sbx.commands.run('echo partial; exit 7').catch((x) => x);
    expect(e).toBeInstanceOf(CommandExitError);
    expect(e.exitCode).toBe(7);
    expect(e.stdout).toBe('partial\n');
    expect(e.error).toBe('exit status 7');
  });

  it('passes envs and cwd; the default cwd is the user home', async () => {
    const r = await sbx.commands.run('echo "$FOO:$PWD"', { envs: { FOO: 'bar' }, cwd: '/tmp' });
    expect(r.stdout).toBe('bar:/tmp\n');
    const home = await sbx.commands.run('pwd; echo $HOME; echo $USER');
    expect(home.stdout).toBe(`${envd.homeRoot}/root\n${envd.homeRoot}/root\nroot\n`);
  });

  it('rejects a cwd that does not exist or is not a directory with invalid argument', async () => {
    const file = (await sbx.files.write('not-a-dir.txt', 'x')).path;
    for (const cwd of ['/no/such/dir', file, `${file}/below-a-file`]) {
      const e = await sbx.commands.run('true', { cwd }).catch((x) => x);
      expect(e.name).toBe('InvalidArgumentError');
      expect(e.message).toContain(`cwd '${cwd}' does not exist or is not a directory`);
    }
  });

  it('streams output to callbacks as it is produced', async () => {
    const chunks: string[] = [];
    await sbx.commands.run('for i in 1 2 3; do echo line$i; done', {
      onStdout: (d) => void chunks.push(d),
    });
    expect(chunks.join('')).toBe('line1\nline2\nline3\n');
  });

  it('runs in the background, is listed, reconnects from another client, and dies on kill', async () => {
    const h = await sbx.commands.run('echo started; sleep 60', { background: true });
    const listed = await sbx.commands.list();
    expect(listed.map((p) => p.pid)).toContain(h.pid);
    expect(listed.find((p) => p.pid === h.pid)?.args).toEqual([
      '-l',
      '-c',
      'echo started; sleep 60',
    ]);
    await h.disconnect();

    const other = sdk(envd); // a second client, as if from another machine
    const again = await other.commands.connect(h.pid);
    expect(await other.commands.kill(h.pid)).toBe(true);
    const e = await again.wait().catch((x) => x);
    expect(e).toBeInstanceOf(CommandExitError);
    expect(e.error).toBe('signal: killed');
    // Output produced before the second client connected was retained and replayed.
    expect(e.stdout).toBe('started\n');
    expect(await sbx.commands.kill(h.pid)).toBe(false);
    expect((await sbx.commands.list()).map((p) => p.pid)).not.toContain(h.pid);
  });

  it('keeps the output of a process that ran while no client was connected', async () => {
    const h = await sbx.commands.run('seq 1 5000; sleep 0.3; echo done', { background: true });
    await h.disconnect();
    await eventually(async () => !(await sbx.commands.list()).some((p) => p.pid === h.pid));
    const late = await sbx.commands.connect(h.pid);
    const r = await late.wait();
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBe(5001);
    expect(lines[4999]).toBe('5000');
    expect(lines[5000]).toBe('done');
  });

  it('feeds stdin and closes it (EOF ends cat)', async () => {
    const h = await sbx.commands.run('cat', { background: true, stdin: true });
    await sbx.commands.sendStdin(h.pid, 'hello ');
    await h.sendStdin('world');
    await h.closeStdin();
    const r = await h.wait();
    expect(r.stdout).toBe('hello world');
  });

  it('gives a process started without stdin /dev/null and refuses input for it', async () => {
    const r = await sbx.commands.run('cat; echo eof');
    expect(r.stdout).toBe('eof\n');
    const h = await sbx.commands.run('sleep 30', { background: true });
    const e = await sbx.commands.sendStdin(h.pid, 'x').catch((x) => x);
    expect(e.message).toMatch(/without stdin/);
    await h.kill();
  });

  it('runs a PTY: input is echoed through the terminal and resize changes stty size', async () => {
    let out = '';
    const dec = new TextDecoder();
    const term = await sbx.pty.create({
      cols: 100,
      rows: 30,
      onData: (d) => {
        out += dec.decode(d);
      },
    });
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; echo "pty-$((6*7))"\n'));
    await eventually(() => out.includes('pty-42') && out.includes('30 100'));
    await sbx.pty.resize(term.pid, { cols: 120, rows: 40 });
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size\n'));
    await eventually(() => out.includes('40 120'));
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('exit 5\n'));
    const e = await term.wait().catch((x) => x);
    expect(e.exitCode).toBe(5);
  });
});

describe('process.Process over raw Connect', () => {
  it('starts with a tag, connects by tag, lists the tag and SIGTERMs it', async () => {
    const { process: rpc } = rawClients(envd, { binary: true });
    const stream = rpc.start({
      process: { cmd: '/bin/sh', args: ['-c', 'echo tagged; sleep 60'] },
      tag: 'job-1',
    });
    const it1 = stream[Symbol.asyncIterator]();
    const first = await it1.next();
    expect(first.value.event.event.case).toBe('start');
    const pid = first.value.event.event.value.pid;
    const listed = await rpc.list({});
    expect(listed.processes.find((p) => p.pid === pid)?.tag).toBe('job-1');

    const events: string[] = [];
    const attached = (async () => {
      for await (const m of rpc.connect({
        process: { selector: { case: 'tag', value: 'job-1' } },
      })) {
        const ev = m.event?.event;
        if (ev?.case === 'data' && ev.value.output.case === 'stdout')
          events.push(new TextDecoder().decode(ev.value.output.value));
        if (ev?.case === 'end') events.push(`end:${ev.value.status}:${ev.value.exitCode}`);
      }
    })();
    await eventually(() => events.includes('tagged\n'));
    await rpc.sendSignal({ process: { selector: { case: 'tag', value: 'job-1' } }, signal: 15 });
    await attached;
    expect(events).toEqual(['tagged\n', 'end:signal: terminated:-1']);
    await it1.return?.();
  });

  it('StreamInput (client streaming) writes to stdin', async () => {
    const { process: rpc } = rawClients(envd, { binary: true });
    const stream = rpc.start({ process: { cmd: '/bin/cat' }, stdin: true })[Symbol.asyncIterator]();
    const pid = (await stream.next()).value.event.event.value;
    const enc = new TextEncoder();
    async function* input(): AsyncGenerator<
      MessageInitShape<typeof processv1.StreamInputRequestSchema>
    > {
      yield {
        event: {
          case: 'start' as const,
          value: { process: { selector: { case: 'pid' as const, value: pid.pid } } },
        },
      };
      yield {
        event: {
          case: 'data' as const,
          value: { input: { input: { case: 'stdin' as const, value: enc.encode('a') } } },
        },
      };
      yield { event: { case: 'keepalive' as const, value: {} } };
      yield {
        event: {
          case: 'data' as const,
          value: { input: { input: { case: 'stdin' as const, value: enc.encode('b') } } },
        },
      };
    }
    await rpc.streamInput(input());
    await rpc.closeStdin({ process: { selector: { case: 'pid', value: pid.pid } } });
    let out = '';
    let exit: number | undefined;
    for (;;) {
      const n = await stream.next();
      if (n.done) break;
      const ev = n.value.event?.event;
      if (ev?.case === 'data') out += new TextDecoder().decode(ev.value.output.value as Uint8Array);
      if (ev?.case === 'end') exit = ev.value.exitCode;
    }
    expect(out).toBe('ab');
    expect(exit).toBe(0);
  });

  it('sends keepalive events at the interval the client asks for', async () => {
    const { process: rpc } = rawClients(envd, { headers: { 'keepalive-ping-interval': '1' } });
    const kinds: string[] = [];
    for await (const m of rpc.start({ process: { cmd: '/bin/sh', args: ['-c', 'sleep 2.5'] } })) {
      kinds.push(m.event?.event.case ?? '?');
    }
    expect(kinds[0]).toBe('start');
    expect(kinds.at(-1)).toBe('end');
    expect(kinds.filter((k) => k === 'keepalive').length).toBeGreaterThanOrEqual(1);
  });

  it('honours Connect-Timeout-Ms: the stream ends with deadline_exceeded, the process lives on', async () => {
    const { process: rpc } = rawClients(envd);
    let pid = 0;
    const e = await (async () => {
      for await (const m of rpc.start(
        { process: { cmd: '/bin/sh', args: ['-c', 'sleep 30'] }, tag: 'deadline' },
        { timeoutMs: 300 },
      )) {
        if (m.event?.event.case === 'start') pid = m.event.event.value.pid;
      }
    })().catch((x) => x);
    expect(e.code).toBe(4); // Code.DeadlineExceeded
    expect((await rpc.list({})).processes.map((p) => p.pid)).toContain(pid);
    await rpc.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: 9 });
  });

  it('answers unknown pids with not_found and a missing selector with invalid_argument', async () => {
    const { process: rpc } = rawClients(envd);
    const nf = await rpc
      .sendSignal({ process: { selector: { case: 'pid', value: 999_999 } }, signal: 9 })
      .catch((x) => x);
    expect(nf.code).toBe(5); // NotFound
    const inv = await rpc.sendInput({}).catch((x) => x);
    expect(inv.code).toBe(3); // InvalidArgument
    const missing = rpc.start({ process: { cmd: '/no/such/binary' } });
    const e = await (async () => {
      for await (const _ of missing) {
      }
    })().catch((x) => x);
    expect(e.code).toBe(5);
  });

  it('rejects malformed JSON with invalid_argument', async () => {
    const res = await fetch(`${envd.url}/process.Process/List`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string };
    expect(body.code).toBe('invalid_argument');
  });
});
