import { describe, expect, it } from 'vitest';
import {
  assertImageName,
  canonicalJson,
  type ImageManifest,
  inputsHash,
  MANIFEST_FORMAT,
  parseManifest,
  staleReason,
} from './manifest.ts';

const digest = (path: string, bytes: number, c: string) => ({ path, bytes, sha256: c.repeat(64) });

function manifest(over: Partial<ImageManifest> = {}): ImageManifest {
  return {
    format: MANIFEST_FORMAT,
    name: 'minimal',
    team: 'public',
    builtAt: '2026-01-01T00:00:00.000Z',
    buildMs: 1,
    inputsHash: 'a'.repeat(64),
    inputs: { image: 'minimal' },
    kernel: {
      release: '6.1.0-56-cloud-amd64',
      package: 'linux-image-6.1.0-56-cloud-amd64',
      version: '6.1.192-2',
      cmdline: 'console=ttyS0',
      vmlinuz: digest('kernels/vmlinuz-x', 10, 'b'),
      initramfs: digest('kernels/initramfs-x', 20, 'c'),
    },
    rootfs: digest('rootfs.ext4', 30, 'd'),
    guest: { envdPort: 49983, user: 'user', init: '/opt/wrenn/init' },
    ...over,
  };
}
const sizes = { rootfs: 30, vmlinuz: 10, initramfs: 20 };
const hashes = { vmlinuz: 'b'.repeat(64), initramfs: 'c'.repeat(64) };

describe('inputs hash', () => {
  it('does not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: 2 } })).toBe(
      '{"a":{"c":2,"d":[1,{"y":2,"z":1}]},"b":1}',
    );
    expect(inputsHash({ a: 1, b: { c: 'x', d: 'y' } })).toBe(
      inputsHash({ b: { d: 'y', c: 'x' }, a: 1 }),
    );
  });

  it('changes when any input changes, including deep ones and list order', () => {
    const base = { envd: 'e1', runtime: { node: { sha256: 'n1' } }, packages: ['bash', 'git'] };
    const h = inputsHash(base);
    expect(inputsHash({ ...base, envd: 'e2' })).not.toBe(h);
    expect(inputsHash({ ...base, runtime: { node: { sha256: 'n2' } } })).not.toBe(h);
    expect(inputsHash({ ...base, packages: ['bash', 'git', 'sudo'] })).not.toBe(h);
    expect(inputsHash({ ...base, packages: ['git', 'bash'] })).not.toBe(h);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('staleReason', () => {
  const m = manifest();
  it('is undefined only when hash, sizes and kernel hashes all match', () => {
    expect(staleReason(m, m.inputsHash, sizes, hashes)).toBeUndefined();
  });
  it('names what forces a rebuild', () => {
    expect(staleReason(undefined, m.inputsHash, sizes, hashes)).toBe('no valid manifest');
    expect(staleReason(m, 'f'.repeat(64), sizes, hashes)).toBe('inputs changed');
    expect(staleReason(m, m.inputsHash, { ...sizes, rootfs: undefined }, hashes)).toMatch(
      /rootfs.ext4 missing/,
    );
    expect(staleReason(m, m.inputsHash, { ...sizes, rootfs: 31 }, hashes)).toMatch(/resized/);
    expect(staleReason(m, m.inputsHash, sizes, { ...hashes, vmlinuz: '0'.repeat(64) })).toMatch(
      /kernel/,
    );
    expect(staleReason(m, m.inputsHash, { ...sizes, initramfs: undefined }, hashes)).toMatch(
      /initramfs/,
    );
  });
});

describe('parseManifest', () => {
  it('round-trips a manifest', () => {
    expect(parseManifest(JSON.stringify(manifest()))).toEqual(manifest());
  });
  it('rejects torn, foreign or older-format files instead of trusting them', () => {
    const text = JSON.stringify(manifest());
    expect(parseManifest(text.slice(0, text.length / 2))).toBeUndefined();
    expect(parseManifest('{}')).toBeUndefined();
    expect(
      parseManifest(JSON.stringify(manifest({ format: MANIFEST_FORMAT + 1 }))),
    ).toBeUndefined();
    expect(parseManifest(JSON.stringify(manifest({ inputsHash: 'xyz' })))).toBeUndefined();
    expect(
      parseManifest(
        JSON.stringify({
          ...manifest(),
          rootfs: { path: 'r', bytes: 1.5, sha256: 'd'.repeat(64) },
        }),
      ),
    ).toBeUndefined();
  });
});

describe('assertImageName', () => {
  it('accepts known names and names the known ones otherwise', () => {
    expect(() => assertImageName('base', ['minimal', 'base'])).not.toThrow();
    expect(() => assertImageName('ubuntu', ['minimal', 'base'])).toThrow(
      "unknown image 'ubuntu': known images are minimal, base",
    );
  });
});
