/**
 * Binary blob/res frame: `u32 big-endian header length | UTF-8 JSON header | chunk bytes`.
 * The header is a BlobFrameHeader; the chunk is `BLOB_CHUNK_BYTES` long except the last one.
 */
import { Compile } from 'typebox/compile';
import { BlobFrameHeader, type BlobFrameHeaderT } from './schemas.js';
import { MAX_BLOB_FRAME_BYTES } from './limits.js';

const headerValidator = Compile(BlobFrameHeader);
const MAX_HEADER_BYTES = 1024;

export function encodeBlobFrame(header: BlobFrameHeaderT, chunk: Uint8Array = new Uint8Array(0)): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const frame = Buffer.allocUnsafe(4 + json.length + chunk.byteLength);
  frame.writeUInt32BE(json.length, 0);
  json.copy(frame, 4);
  frame.set(chunk, 4 + json.length);
  return frame;
}

export type DecodedFrame = { ok: true; header: BlobFrameHeaderT; chunk: Buffer } | { ok: false; message: string };

export function decodeBlobFrame(frame: Buffer): DecodedFrame {
  if (frame.length > MAX_BLOB_FRAME_BYTES) return { ok: false, message: `frame of ${frame.length} bytes exceeds ${MAX_BLOB_FRAME_BYTES}` };
  if (frame.length < 4) return { ok: false, message: 'frame shorter than its length word' };
  const headerLength = frame.readUInt32BE(0);
  if (headerLength > MAX_HEADER_BYTES || 4 + headerLength > frame.length) return { ok: false, message: `bad header length ${headerLength}` };
  let header: unknown;
  try {
    header = JSON.parse(frame.subarray(4, 4 + headerLength).toString('utf8'));
  } catch {
    return { ok: false, message: 'header is not JSON' };
  }
  if (!headerValidator.Check(header)) return { ok: false, message: 'header does not match the schema' };
  return { ok: true, header, chunk: frame.subarray(4 + headerLength) };
}
