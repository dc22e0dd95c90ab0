/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { readFileSync } from 'node:fs';

// The app's CSP from tauri.conf.json, also sent by `vite preview` so that the browser
// tests run the built UI under the same policy.
const tauriConf = JSON.parse(readFileSync(new URL('../tauri.conf.json', import.meta.url), 'utf8'));
const csp = Object.entries(tauriConf.app.security.csp as Record<string, string>)
  .map(([k, v]) => `${k} ${v}`)
  .join('; ');

export default defineConfig({
  plugins: [svelte()],
  define: { __APP_VERSION__: JSON.stringify(tauriConf.version) },
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  preview: { headers: { 'Content-Security-Policy': csp } },
  build: {
    target: 'es2022',
    // Everything as files: a strict CSP (default-src 'self') allows no inline code or styles.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
  test: {
    environment: 'jsdom',
    globals: true,
    include: ['tests/**/*.test.ts'],
    setupFiles: ['tests/setup.ts'],
  },
});
