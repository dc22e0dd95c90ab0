import { afterEach, describe, expect, it } from 'vitest';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import ar from '../src/locales/ar.json';
import { locale, pickLocale, setLocale } from '../src/lib/i18n';
import { errorText, s, warningText } from '../src/lib/strings';
import { ERROR_CODES, EVENT_ERROR_CODES } from '../src/lib/bindings';

/** Every key of a catalogue, plural forms folded to their base key. */
function keys(o: object, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null ? keys(v, `${prefix}${k}.`) : [`${prefix}${k.replace(/_(zero|one|two|few|many|other)$/, '')}`],
  );
}

/** The {{placeholders}} of every message, by key. */
function placeholders(o: object, prefix = ''): Record<string, string> {
  return Object.fromEntries(
    Object.entries(o).flatMap(([k, v]) =>
      typeof v === 'object' && v !== null
        ? Object.entries(placeholders(v, `${prefix}${k}.`))
        : [[`${prefix}${k}`, [...String(v).matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]).sort().join(',')]],
    ),
  );
}

afterEach(() => setLocale('en'));

describe('catalogues', () => {
  it('French is complete and uses the same placeholders as English', () => {
    expect([...new Set(keys(fr))].sort()).toEqual([...new Set(keys(en))].sort());
    const enP = placeholders(en);
    const frP = placeholders(fr);
    for (const [k, p] of Object.entries(frP)) if (k in enP) expect(p, k).toBe(enP[k]);
  });

  it('Arabic has only keys English has', () => {
    const all = new Set(keys(en));
    expect(keys(ar).filter((k) => !all.has(k))).toEqual([]);
  });

  it('picks the first system language with a catalogue', () => {
    expect(pickLocale(['de-DE', 'fr-CA', 'en'])).toBe('fr');
    expect(pickLocale(['ar-EG'])).toBe('ar');
    expect(pickLocale(['de', 'ja'])).toBe('en');
    expect(pickLocale([])).toBe('en');
  });
});

describe('the UI in another language', () => {
  it('speaks French, with its plural rules and placeholders', () => {
    setLocale('fr');
    expect(locale()).toBe('fr');
    expect(s.join.submit).toBe('Rejoindre');
    expect(s.room.unread(1)).toBe('1 message non lu');
    expect(s.room.unread(3)).toBe('3 messages non lus');
    expect(s.room.privateWith('bob')).toBe('Discussion privée avec bob');
    expect(s.connection.reconnectingIn(2, 9)).toBe('Connexion perdue. Nouvel essai dans 9 s (essai 2).');
    for (const code of [...ERROR_CODES, ...EVENT_ERROR_CODES]) expect(errorText(code), code).not.toBe(en.errors.generic);
    expect(errorText('no_such_code')).toBe(fr.errors.generic);
  });

  it('speaks Arabic right to left, with Arabic plural forms, English where it has no message', () => {
    setLocale('ar');
    expect(document.documentElement.dir).toBe('rtl');
    expect(document.documentElement.lang).toBe('ar');
    expect(s.room.unread(1)).toBe('رسالة واحدة غير مقروءة');
    expect(s.room.unread(2)).toBe('رسالتان غير مقروءتين');
    expect(s.room.unread(5)).toBe('5 رسائل غير مقروءة');
    expect(s.room.unread(11)).toBe('11 رسالة غير مقروءة');
    expect(s.verify.mark).toBe(en.verify.mark);
    setLocale('en');
    expect(document.documentElement.dir).toBe('ltr');
    expect(s.room.unread(1)).toBe('1 unread message');
    expect(s.room.unread(2)).toBe('2 unread messages');
  });
});

describe('engine warnings in the UI\'s words', () => {
  it('every warning code has a sentence in English and French', async () => {
    const { WARNING_CODES } = await import('../src/lib/bindings');
    expect(WARNING_CODES.length).toBeGreaterThan(15);
    for (const code of WARNING_CODES) {
      const base = `${code}` in en.warnings.codes || `${code}_other` in en.warnings.codes;
      expect(base, `${code} in en.json`).toBe(true);
      expect(`${code}` in fr.warnings.codes || `${code}_other` in fr.warnings.codes, `${code} in fr.json`).toBe(true);
    }
  });

  it('names the members, counts with plural rules, and falls back to the engine sentence', () => {
    expect(warningText('roster_split', ['bob', 'carol'], null, 'x')).toBe(
      'carol sees a different key for bob: the server may be impersonating someone.',
    );
    expect(warningText('rejoin_incomplete', [], 1, 'x')).toMatch(/^1 member did not/);
    expect(warningText('rejoin_incomplete', [], 3, 'x')).toMatch(/^3 members did not/);
    // A name the sentence needs is missing, or the code is unknown: the engine's sentence.
    expect(warningText('roster_split', ['bob'], null, 'engine says')).toBe('engine says');
    expect(warningText('made_up', [], null, 'engine says')).toBe('engine says');
    setLocale('fr');
    expect(warningText('unconfirmed', ['bob', 'carol'], null, 'x')).toBe('Un message n’a pas été confirmé à temps par bob, carol.');
    expect(warningText('rejoin_incomplete', [], 2, 'x')).toMatch(/^2 membres ne sont pas revenus/);
  });
});
