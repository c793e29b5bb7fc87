/** Where things are, from the compiled bench (test/dist/bench/lib). */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SignedManifestT } from '@cairn/shared';

export const REPO = resolve(import.meta.dirname, '../../../..');
export const IMAGES = join(REPO, 'firmware-images');
export const AGENT_CLI = fileURLToPath(import.meta.resolve('@cairn/agent/cli/main.js'));

export const imageDir = (id: string): string => join(IMAGES, id);
export const imageModelPath = (id: string): string => join(IMAGES, id, 'model.onnx');
export const imageManifest = (id: string): SignedManifestT => JSON.parse(readFileSync(join(IMAGES, id, 'manifest.json'), 'utf8')) as SignedManifestT;
