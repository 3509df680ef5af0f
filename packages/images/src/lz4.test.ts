import { describe, expect, it } from 'vitest';
import { lz4LegacyDecode, vmlinuxFromBzImage } from './lz4.ts';

const MAGIC = [0x02, 0x21, 0x4c, 0x18];
const le32 = (n: number) => [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255];
const frame = (...blocks: number[][]) =>
  Uint8Array.from([...MAGIC, ...blocks.flatMap((b) => [...le32(b.length), ...b])]);
const bytes = (s: string) => [...Buffer.from(s)];

describe('LZ4 legacy decoding', () => {
  it('decodes literals and an overlapping match', () => {
    // "abc", then a match of 9 at offset 3 (copies its own output), then literals "xyz".
    const block = [0x35, ...bytes('abc'), 0x03, 0x00, 0x30, ...bytes('xyz')];
    expect(lz4LegacyDecode(frame(block), 15).toString()).toBe('abcabcabcabcxyz');
  });

  it('decodes extended literal lengths across several blocks', () => {
    const twenty = 'abcdefghijklmnopqrst';
    const out = lz4LegacyDecode(
      frame([0xf0, 20 - 15, ...bytes(twenty)], [0x20, ...bytes('!!')]),
      22,
    );
    expect(out.toString()).toBe(`${twenty}!!`);
  });

  it('rejects a wrong magic, a truncated block and a size mismatch', () => {
    expect(() => lz4LegacyDecode(Uint8Array.from([1, 2, 3, 4, 5]), 1)).toThrow(
      'not an LZ4 legacy stream',
    );
    const good = frame([0x30, ...bytes('xyz')]);
    expect(() => lz4LegacyDecode(good.subarray(0, good.length - 1), 3)).toThrow(/past the end/);
    expect(() => lz4LegacyDecode(good, 4)).toThrow('decoded to 3 bytes, expected 4');
    expect(() => lz4LegacyDecode(frame([0x14, ...bytes('a'), 0x05, 0x00]), 10)).toThrow(
      'corrupt LZ4 match',
    );
  });

  it('finds no vmlinux in something that is not a bzImage', () => {
    expect(vmlinuxFromBzImage(Buffer.alloc(4096))).toBeUndefined();
  });
});
