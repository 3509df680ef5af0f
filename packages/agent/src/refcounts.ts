import { WrennError } from '@wrenn/common';

/**
 * Reference counts on template base images: a base image in use by a running sandbox
 * cannot be deleted.
 *
 * INVARIANT: release(key) is only called by a sandbox that called acquire(key) and has
 * not released it yet; a sandbox records the key it acquired (`Sandbox.baseImage`) and
 * releases exactly that. Releasing an unknown key is a bug and throws, because silently
 * tolerating it would decrement a coincident running sandbox's count.
 */
export class RefCounts {
  private readonly counts = new Map<string, number>();

  acquire(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  release(key: string): void {
    const n = this.counts.get(key);
    if (!n)
      throw new WrennError('internal', `release of base image ${key} that was never acquired`);
    if (n === 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}
