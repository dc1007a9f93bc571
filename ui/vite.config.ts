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
  // `npm run ui:dev`: the page from Vite with hot reload, the API from a running ferryd's TCP listener
  server: { proxy: { '/v1': process.env.FERRY_API_URL ?? 'http://127.0.0.1:7677' } },
  logLevel: 'warn',
});
