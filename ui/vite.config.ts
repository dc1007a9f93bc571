import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

// The web UI of ferryd (Volume Hub): built into dist/ui, which ferryd serves at `/` on its TCP listener.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    target: 'es2020',
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  logLevel: 'warn',
});
