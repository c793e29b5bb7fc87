import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

// The hub serves dist/ at `/` (DESIGN §6): index.html must be revalidated on every load, while
// everything under assets/ carries a content hash in its name and may be cached forever.
export default defineConfig({
  base: '/',
  // Compiler options (runes mode) are in svelte.config.js.
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Deliberately off: the console is open source and small; maps would only add weight to dist/.
    sourcemap: false,
  },
  server: {
    // `npm run dev -w @cairn/console` against a hub on its default port.
    proxy: { '/api': 'http://127.0.0.1:8080' },
  },
});
