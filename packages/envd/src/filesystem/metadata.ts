import type { Stats } from 'node:fs';

/**
 * User metadata attached to files by uploads (X-Metadata-<key> headers), keyed by inode so
 * it follows a file through Move. Kept in envd's memory — which a pause snapshots with the
 * VM — because Node has no xattr API and the minimal image has no attr tools.
 */
export class MetadataStore {
  private readonly byInode = new Map<string, Record<string, string>>();

  private key(st: Stats): string {
    return `${st.dev}:${st.ino}`;
  }

  get(st: Stats): Record<string, string> {
    return this.byInode.get(this.key(st)) ?? {};
  }

  /** Replace the file's metadata (an upload without metadata clears it). */
  set(st: Stats, md: Record<string, string>): void {
    if (Object.keys(md).length === 0) this.byInode.delete(this.key(st));
    else this.byInode.set(this.key(st), md);
  }

  forget(st: Stats): void {
    this.byInode.delete(this.key(st));
  }
}
