import { describe, expect, it } from 'vitest';
import { OutputRing, Subscriber } from '../../src/process/output.ts';

const chunk = (n: number, fill = 1) => ({
  kind: 'stdout' as const,
  data: new Uint8Array(n).fill(fill),
});

describe('OutputRing', () => {
  it('keeps everything below the limit, in order', () => {
    const r = new OutputRing(100);
    r.push(chunk(10, 1));
    r.push(chunk(20, 2));
    expect(r.snapshot().map((c) => c.data[0])).toEqual([1, 2]);
    expect(r.bytes).toBe(30);
    expect(r.dropped).toBe(0);
  });

  it('drops the oldest chunks beyond the limit and counts what it dropped', () => {
    const r = new OutputRing(100);
    for (let i = 0; i < 50; i++) r.push(chunk(10, i));
    expect(r.bytes).toBeLessThanOrEqual(100);
    expect(r.snapshot().at(-1)!.data[0]).toBe(49);
    expect(r.bytes + r.dropped).toBe(500);
  });

  it('always keeps the newest chunk even if it alone exceeds the limit', () => {
    const r = new OutputRing(10);
    r.push(chunk(5));
    r.push(chunk(50, 7));
    expect(r.snapshot().map((c) => c.data.length)).toEqual([50]);
  });

  it('stays bounded over a million pushes (the dead prefix is compacted)', () => {
    const r = new OutputRing(1000);
    for (let i = 0; i < 1_000_000; i++) r.push(chunk(1));
    expect(r.snapshot().length).toBeLessThanOrEqual(1000);
  });
});

describe('Subscriber', () => {
  it('yields queued events in order, merging neighbours of the same stream, and ends after end', async () => {
    let drained = 0;
    const s = new Subscriber(
      () => drained++,
      () => {},
    );
    s.push(chunk(3, 1));
    s.push(chunk(4, 2));
    s.push({ kind: 'stderr', data: new Uint8Array([9]) });
    s.push(chunk(2, 3));
    expect(s.queuedBytes).toBe(10);
    s.push({ kind: 'end', exitCode: 0, exited: true, status: 'exit status 0' });
    const got: string[] = [];
    for await (const ev of s.events())
      got.push(
        ev.kind === 'end' || ev.kind === 'keepalive'
          ? ev.kind
          : `${ev.kind}:${Array.from(ev.data).join('')}`,
      );
    expect(got).toEqual(['stdout:1112222', 'stderr:9', 'stdout:33', 'end']);
    expect(drained).toBe(3);
    expect(s.queuedBytes).toBe(0);
  });

  it('adds a keepalive only when idle', () => {
    const s = new Subscriber(
      () => {},
      () => {},
    );
    s.push(chunk(1));
    s.keepalive();
    expect(s.queuedBytes).toBe(1);
  });
});
