// The message catalogues (src/locales/*.json, i18next's JSON format: nested keys,
// {{name}} placeholders, plural forms as key_one/key_other/… after the CLDR rules of
// Intl.PluralRules) and the language the UI speaks: the one chosen in the settings, or
// ("follow the system", the default) the first of the system's languages that has a
// catalogue, else English. A missing message falls back to English. A change of language
// redraws every text on screen at once.
import i18next from 'i18next';
import en from '../locales/en.json' with { type: 'json' };
import fr from '../locales/fr.json' with { type: 'json' };
import ar from '../locales/ar.json' with { type: 'json' };
import type { Language } from './bindings';
import { createSubscriber } from 'svelte/reactivity';

/** The languages with a catalogue, all complete (Arabic is written right to left). */
export const LOCALES = ['en', 'fr', 'ar'] as const;
export type Locale = (typeof LOCALES)[number];

/** The first of `wanted` (BCP 47 tags, most wanted first) that has a catalogue, else English. */
export function pickLocale(wanted: readonly string[]): Locale {
  for (const tag of wanted) {
    const base = tag.toLowerCase().split('-')[0];
    const hit = LOCALES.find((l) => l === base);
    if (hit) return hit;
  }
  return 'en';
}

const systemLanguages = (): readonly string[] =>
  typeof navigator === 'undefined' ? [] : (navigator.languages ?? [navigator.language]);

// Svelte's hook for outside state: `t()` calls `depend()`, so every effect (a component's
// text) that read a message runs again, in the new language, when `redraw()` is called.
let redraw = (): void => {};
const depend = createSubscriber((update) => {
  redraw = update;
  return () => {
    redraw = () => {};
  };
});

/** The language chosen in the settings as the app handed it over before the page's own
 * scripts ran (`window.__CRYPTOCAT_LANGUAGE__`, src-tauri's `sys::language_script`), so
 * that the first drawing speaks it; "follow the system" without it. */
function startLanguage(): Language {
  const given = typeof window === 'undefined' ? undefined : (window as unknown as Record<string, unknown>).__CRYPTOCAT_LANGUAGE__;
  return given === 'en' || given === 'fr' || given === 'ar' ? given : 'system';
}

const i18n = i18next.createInstance();
void i18n.init({
  initAsync: false,
  lng: localeFor(startLanguage()),
  fallbackLng: 'en',
  supportedLngs: [...LOCALES],
  resources: { en: { translation: en }, fr: { translation: fr }, ar: { translation: ar } },
  // Svelte escapes every text it renders; nothing is ever rendered as markup.
  interpolation: { escapeValue: false },
});

/** The message `key` in the current language, with its placeholders filled in. */
export function t(key: string, values?: Record<string, string | number>): string {
  depend();
  return i18n.t(key, values ?? {});
}

/** The English message `key` as written (placeholders unfilled); `null` when there is none. */
export function tEnglish(key: string): string | null {
  const found = key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), en);
  return typeof found === 'string' ? found : null;
}

/** The current language. */
export function locale(): Locale {
  return pickLocale([i18n.language]);
}

/** Switches the language; what is on screen follows at once. */
export function setLocale(l: Locale): void {
  void i18n.changeLanguage(l);
  applyToDocument();
  redraw();
}

/** The language for a choice of the settings: the system's for `system`. */
export function localeFor(choice: Language): Locale {
  return choice === 'system' ? pickLocale(systemLanguages()) : choice;
}

/** Speaks the language chosen in the settings, at once. */
export function applyLanguage(choice: Language): void {
  if (localeFor(choice) !== locale()) setLocale(localeFor(choice));
}

/** Sets the document's `lang` and writing direction (`rtl` for Arabic) from the language. */
export function applyToDocument(): void {
  if (typeof document === 'undefined') return;
  document.documentElement.lang = locale();
  document.documentElement.dir = i18n.dir(locale());
}
