/** Groups a fingerprint's hex digits by four for reading aloud (spaced forms stay as they are). */
export function formatFingerprint(fp: string): string {
  if (/\s/.test(fp)) return fp;
  return (fp.match(/.{1,4}/g) ?? []).join(' ');
}

/** The time of day of `ms` (ms since the epoch) in this computer's time zone and the
 * given locale (default: the system's), hours and minutes. */
export function timeOfDay(ms: number, locale?: string): string {
  return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' }).format(ms);
}

/** The full date and time of `ms`, for a tooltip. */
export function fullDate(ms: number, locale?: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeStyle: 'medium' }).format(ms);
}

/** Whole seconds left until `due` (ms since the epoch) at `now`, never negative. */
export function secondsLeft(due: number, now: number): number {
  return Math.max(0, Math.ceil((due - now) / 1000));
}
