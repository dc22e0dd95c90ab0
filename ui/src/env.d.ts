/// <reference types="svelte" />
/// <reference types="vite/client" />

/** The app's version (tauri.conf.json), set by vite.config.ts. */
declare const __APP_VERSION__: string;
