/*
 * wrenn-stream: moves a QEMU migration stream between a pipe and a file, for the agent's
 * `exec:` migration URIs (QEMU 7.2 has no `file:` URI).
 *
 *   wrenn-stream save FILE   stdin → FILE; exits 0 only once FILE is on disk (fdatasync)
 *   wrenn-stream load FILE   FILE → stdout
 *
 * Why not `cat`: a pipe holds 64 KiB by default, so QEMU and the copier take turns every
 * 64 KiB; a 1 MiB pipe and splice(2) (no copy through user space) move a stream about
 * twice as fast. A save also starts the disk write-back every few MiB while the stream
 * arrives (sync_file_range), so the closing fdatasync finds little left to flush: the
 * durable save costs about what a page-cache-only `cat > file` does.
 *
 * Errors go to stderr as "wrenn-stream: <file>: <reason>", exit status 1 (2: usage).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20)
#define CHUNK (1 << 20)
#define WRITEBACK_EVERY (8 << 20)

static const char *path;

static int fail(const char *what) {
  fprintf(stderr, "wrenn-stream: %s: %s%s\n", path, what ? what : "", strerror(errno));
  return 1;
}

/* Move everything from `in` to `out`: splice when both ends allow it, else read/write. */
static int copy(int in, int out, int syncing) {
  static char buf[CHUNK];
  long long done = 0, kicked = 0;
  int use_splice = 1;
  for (;;) {
    ssize_t n;
    if (use_splice) {
      n = splice(in, NULL, out, NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_MORE);
      if (n < 0 && errno == EINVAL && done == 0) {
        use_splice = 0; /* a file system without splice: copy through the buffer */
        continue;
      }
    } else {
      n = read(in, buf, CHUNK);
      for (ssize_t off = 0; n > 0 && off < n;) {
        ssize_t w = write(out, buf + off, n - off);
        if (w < 0 && errno != EINTR) return fail("write: ");
        if (w > 0) off += w;
      }
    }
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(NULL);
    }
    done += n;
    if (syncing && done - kicked >= WRITEBACK_EVERY) {
      /* Start write-back of what arrived so far; do not wait for it. */
      sync_file_range(out, kicked, done - kicked, SYNC_FILE_RANGE_WRITE);
      kicked = done;
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "save") != 0 && strcmp(argv[1], "load") != 0)) {
    fprintf(stderr, "usage: wrenn-stream save FILE < stream | wrenn-stream load FILE > stream\n");
    return 2;
  }
  path = argv[2];
  if (strcmp(argv[1], "save") == 0) {
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return fail(NULL);
    fcntl(0, F_SETPIPE_SZ, PIPE_BYTES); /* best effort: not a pipe, or over the limit */
    if (copy(0, out, 1) != 0) return 1;
    if (fdatasync(out) < 0) return fail("fdatasync: ");
    if (close(out) < 0) return fail("close: ");
    return 0;
  }
  int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0) return fail(NULL);
  fcntl(1, F_SETPIPE_SZ, PIPE_BYTES);
  return copy(in, 1, 0);
}
