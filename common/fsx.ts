// Promise wrappers over the callback fs API: the FileHandle API allocates more per call,
// and these sit on the needle hot path (one pread per GET, one writev per group commit).
import fs from 'node:fs';

export function open(path: string, flags: string | number, mode = 0o644): Promise<number> {
  return new Promise((res, rej) => fs.open(path, flags, mode, (e, fd) => (e ? rej(e) : res(fd))));
}

export function close(fd: number): Promise<void> {
  return new Promise((res, rej) => fs.close(fd, (e) => (e ? rej(e) : res())));
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
}

export function fsync(fd: number): Promise<void> {
  return new Promise((res, rej) => fs.fsync(fd, (e) => (e ? rej(e) : res())));
}

export function ftruncate(fd: number, len: number): Promise<void> {
  return new Promise((res, rej) => fs.ftruncate(fd, len, (e) => (e ? rej(e) : res())));
}

export function fstatSize(fd: number): Promise<number> {
  return new Promise((res, rej) => fs.fstat(fd, (e, st) => (e ? rej(e) : res(st.size))));
}

function readOnce(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((res, rej) =>
    fs.read(fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res(n))),
  );
}

/** Reads up to buf.length bytes at pos; returns how many were read (short only at EOF). */
export async function pread(fd: number, buf: Buffer, pos: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const n = await readOnce(fd, buf, done, buf.length - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function writevOnce(fd: number, bufs: Buffer[], pos: number): Promise<number> {
  return new Promise((res, rej) => fs.writev(fd, bufs, pos, (e, n) => (e ? rej(e) : res(n))));
}

/** Writes every buffer at pos, resuming after short writes. */
export async function pwritev(fd: number, bufs: Buffer[], pos: number): Promise<void> {
  let rest = bufs;
  let at = pos;
  // writev takes at most IOV_MAX (1024) buffers per call.
  while (rest.length > 0) {
    const slice = rest.length > 1024 ? rest.slice(0, 1024) : rest;
    let n = await writevOnce(fd, slice, at);
    at += n;
    let i = 0;
    while (i < slice.length && n >= slice[i]!.length) n -= slice[i++]!.length;
    const remaining = rest.slice(i);
    if (n > 0 && remaining.length > 0) remaining[0] = remaining[0]!.subarray(n);
    rest = remaining;
  }
}

/** Makes a rename or create in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fsync(fd);
  } finally {
    await close(fd);
  }
}
