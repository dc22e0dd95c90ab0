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

  it('Arabic is complete, with every Arabic plural form and the same placeholders as English', () => {
    expect([...new Set(keys(ar))].sort()).toEqual([...new Set(keys(en))].sort());
    const enP = placeholders(en);
    const arP = placeholders(ar);
    const plural = /_(zero|one|two|few|many|other)$/;
    const base = (k: string) => k.replace(plural, '');
    const pluralBases = [...new Set(Object.keys(enP).filter((k) => plural.test(k)).map(base))];
    expect(pluralBases.length).toBeGreaterThan(1);
    for (const b of pluralBases) {
      // The forms i18next asks Intl.PluralRules('ar') for: all six.
      const forms = new Intl.PluralRules('ar').resolvedOptions().pluralCategories;
      expect(forms.length, b).toBe(6);
      for (const f of forms) expect(arP, `${b}_${f}`).toHaveProperty([`${b}_${f}`]);
      // No other placeholder than English has; the number itself may be spelt out in
      // the forms for 0, 1 and 2, never in the others.
      const enHoles = new Set(Object.entries(enP).filter(([k]) => base(k) === b).flatMap(([, p]) => p.split(',').filter(Boolean)));
      for (const f of forms) {
        const holes = arP[`${b}_${f}`].split(',').filter(Boolean);
        for (const h of holes) expect(enHoles.has(h), `${b}_${f}: {{${h}}}`).toBe(true);
        const rest = [...enHoles].filter((h) => h !== 'count');
        for (const h of rest) expect(holes, `${b}_${f}`).toContain(h);
        if (!['zero', 'one', 'two'].includes(f)) expect(holes, `${b}_${f}`).toContain('count');
      }
    }
    for (const [k, p] of Object.entries(arP)) if (!plural.test(k)) expect(p, k).toBe(enP[k]);
  });

  it('every language names itself alike in every catalogue', () => {
    for (const c of [fr, ar]) expect(c.languageNames).toEqual(en.languageNames);
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

  it('speaks Arabic right to left, with Arabic plural forms', () => {
    setLocale('ar');
    expect(document.documentElement.dir).toBe('rtl');
    expect(document.documentElement.lang).toBe('ar');
    expect(s.room.unread(0)).toBe('لا رسائل غير مقروءة');
    expect(s.room.unread(1)).toBe('رسالة واحدة غير مقروءة');
    expect(s.room.unread(2)).toBe('رسالتان غير مقروءتين');
    expect(s.room.unread(5)).toBe('5 رسائل غير مقروءة');
    expect(s.room.unread(11)).toBe('11 رسالة غير مقروءة');
    expect(s.room.unread(100)).toBe('100 رسالة غير مقروءة');
    expect(warningText('rejoin_incomplete', [], 3, 'x')).toMatch(/^لم يعد 3 أعضاء/);
    expect(s.verify.mark).toBe(ar.verify.mark);
    expect(s.verify.mark).not.toBe(en.verify.mark);
    for (const code of [...ERROR_CODES, ...EVENT_ERROR_CODES]) expect(errorText(code), code).not.toBe(en.errors.generic);
    setLocale('en');
    expect(document.documentElement.dir).toBe('ltr');
    expect(s.room.unread(1)).toBe('1 unread message');
    expect(s.room.unread(2)).toBe('2 unread messages');
  });
});

describe('engine warnings in the UI\'s words', () => {
  it('every warning code has a sentence in English, French and Arabic', async () => {
    const { WARNING_CODES } = await import('../src/lib/bindings');
    expect(WARNING_CODES.length).toBeGreaterThan(15);
    for (const code of WARNING_CODES) {
      const base = `${code}` in en.warnings.codes || `${code}_other` in en.warnings.codes;
      expect(base, `${code} in en.json`).toBe(true);
      expect(`${code}` in fr.warnings.codes || `${code}_other` in fr.warnings.codes, `${code} in fr.json`).toBe(true);
      expect(`${code}` in ar.warnings.codes || `${code}_other` in ar.warnings.codes, `${code} in ar.json`).toBe(true);
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
