/**
 * Typed contexts that App provides to every page. Pages take the API client from here rather than
 * importing a singleton, so a component test can hand them a fake.
 */
import { createContext } from 'svelte';
import type { Api } from './api';

export const [getApi, setApi] = createContext<Api>();
