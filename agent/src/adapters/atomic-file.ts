/**
 * Crash-safe file replacement: write a temporary file in the same directory, fsync it, rename it
 * over the target, then fsync the directory so that the rename itself survives a power loss.
 * A reader sees either the old or the new content, never a mix.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let counter = 0;

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${++counter}.tmp`);
  try {
    const file = await open(tmp, 'w', mode);
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDirectory(dirname(path));
}

/** Makes renames and creations in `dir` durable. Platforms that cannot fsync a directory skip it. */
export async function fsyncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close();
  }
}

/** True when the temporary files of writeFileAtomic for `path` name `entry`. */
export function isAtomicTempOf(path: string, entry: string): boolean {
  return entry.startsWith(`.${basename(path)}.`) && entry.endsWith('.tmp');
}
