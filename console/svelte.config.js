// Svelte compiler options live here so that the Vite plugin and editor tooling read the same
// ones. Runes mode everywhere: no component may fall back to Svelte 4's implicit reactivity.
export default {
  compilerOptions: { runes: true },
};
