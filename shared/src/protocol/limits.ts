/** Protocol-wide bounds shared by hub and agent. Changing one is a protocol change. */

/** Largest JSON payload either side accepts on any topic (desired documents carry a manifest and a keyring). */
export const MAX_JSON_PAYLOAD_BYTES = 256 * 1024;
/** Bytes of model data in one blob/res frame. */
export const BLOB_CHUNK_BYTES = 64 * 1024;
/** Most chunks one blob/req may ask for; the agent's download window. */
export const BLOB_MAX_WINDOW = 32;
/** Largest blob/res frame: header length word + header + one chunk. */
export const MAX_BLOB_FRAME_BYTES = BLOB_CHUNK_BYTES + 4 + 1024;
