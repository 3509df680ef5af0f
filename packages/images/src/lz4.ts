import { WrennError } from '@wrenn/common';

/**
 * Decoder for the LZ4 "legacy" frame the kernel build uses for an LZ4 bzImage payload
 * (magic 0x184C2102, then blocks each prefixed by their LE32 compressed size).
 * `outSize` is the decompressed size (the kernel build appends it after the stream).
 */
export function lz4LegacyDecode(src: Uint8Array, outSize: number): Buffer {
  if (src.length < 4 || readLE32(src, 0) !== 0x184c2102) {
    throw new WrennError('internal', 'not an LZ4 legacy stream');
  }
  const out = Buffer.alloc(outSize);
  let op = 0;
  let ip = 4;
  while (ip + 4 <= src.length && op < outSize) {
    const size = readLE32(src, ip);
    ip += 4;
    if (size === 0x184c2102) continue; // concatenated frame
    if (ip + size > src.length)
      throw new WrennError('internal', 'LZ4 block runs past the end of the input');
    op = decodeBlock(src, ip, ip + size, out, op);
    ip += size;
  }
  if (op !== outSize)
    throw new WrennError('internal', `LZ4 stream decoded to ${op} bytes, expected ${outSize}`);
  return out;
}

function decodeBlock(src: Uint8Array, ip: number, end: number, out: Buffer, op: number): number {
  while (ip < end) {
    const token = src[ip++]!;
    let lit = token >> 4;
    if (lit === 15) {
      let b: number;
      do {
        b = src[ip++]!;
        lit += b;
      } while (b === 255);
    }
    if (op + lit > out.length || ip + lit > end)
      throw new WrennError('internal', 'corrupt LZ4 literals');
    out.set(src.subarray(ip, ip + lit), op);
    ip += lit;
    op += lit;
    if (ip >= end) break; // the last sequence has literals only
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    let len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        b = src[ip++]!;
        len += b;
      } while (b === 255);
    }
    len += 4;
    if (offset === 0 || offset > op || op + len > out.length)
      throw new WrennError('internal', 'corrupt LZ4 match');
    // Matches may overlap their own output (offset < len): copy forward byte by byte then.
    if (offset >= len) out.copy(out, op, op - offset, op - offset + len);
    else for (let i = 0; i < len; i++) out[op + i] = out[op - offset + i]!;
    op += len;
  }
  return op;
}

const readLE32 = (b: Uint8Array, at: number) =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/**
 * The uncompressed kernel (ELF vmlinux) inside an x86 bzImage whose payload is LZ4, or
 * undefined for other compressions. QEMU boots the ELF through its PVH entry point, which
 * skips the in-guest decompression: measured ~0.5 s of emulated CPU per boot under TCG.
 */
export function vmlinuxFromBzImage(bz: Uint8Array): Buffer | undefined {
  if (bz.length < 0x260 || readLE32(bz, 0x202) !== 0x53726448) return undefined; // "HdrS"
  const setupSects = bz[0x1f1] || 4;
  const payloadOffset = readLE32(bz, 0x248);
  const payloadLength = readLE32(bz, 0x24c);
  const start = (setupSects + 1) * 512 + payloadOffset;
  const payload = bz.subarray(start, start + payloadLength);
  if (payload.length !== payloadLength || readLE32(payload, 0) !== 0x184c2102) return undefined;
  // The build appends the decompressed size as LE32 right after the stream.
  const outSize = readLE32(payload, payload.length - 4);
  const elf = lz4LegacyDecode(payload.subarray(0, payload.length - 4), outSize);
  if (elf.readUInt32BE(0) !== 0x7f454c46)
    throw new WrennError('internal', 'the kernel payload is not an ELF image');
  return elf;
}
