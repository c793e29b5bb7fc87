/** Protocol-wide bounds shared by hub and agent. Changing one is a protocol change. */

/** Largest JSON payload either side accepts on any topic (desired documents carry a manifest and a keyring). */
export const MAX_JSON_PAYLOAD_BYTES = 256 * 1024;
/**
 * Deepest nesting of arrays and objects either side accepts in a JSON payload. Legitimate
 * payloads stay below 16 (a desired document's manifest sections included); the bound exists
 * because canonical JSON and JSON.stringify recurse, and a payload a few thousand levels deep
 * (a few KiB of brackets) would overflow the stack where a signature is checked.
 */
export const MAX_JSON_DEPTH = 64;
/** Bytes of model data in one blob/res frame. */
export const BLOB_CHUNK_BYTES = 64 * 1024;
/** Most chunks one blob/req may ask for; the agent's download window. */
export const BLOB_MAX_WINDOW = 32;
/** Largest blob/res frame: header length word + header + one chunk. */
export const MAX_BLOB_FRAME_BYTES = BLOB_CHUNK_BYTES + 4 + 1024;
