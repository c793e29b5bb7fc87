/**
 * Typed contexts that App provides to every page. Pages take the API client and the live stream
 * from here rather than importing singletons, so a component test can hand them fakes.
 */
import { createContext } from 'svelte';
import type { Api } from './api';
import type { LiveStream } from './live-stream.svelte';

export const [getApi, setApi] = createContext<Api>();
export const [getLive, setLive] = createContext<LiveStream>();
