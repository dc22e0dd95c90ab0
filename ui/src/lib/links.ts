// Links in message text: only http:// and https:// addresses become links (never
// javascript:, data:, file: or anything else); the rest stays plain text.

export type Part = { kind: 'text'; text: string } | { kind: 'link'; url: string };

const CANDIDATE = /https?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"»”’]+$/;

/** The URL if `text` is an absolute http(s) address with a host and no user name. */
export function safeUrl(text: string): string | null {
  if (!/^https?:\/\//i.test(text) || text.length > 2048) return null;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return null;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') return null;
  if (u.username !== '' || u.password !== '') return null;
  return text;
}

/** Splits a message text into plain text and http(s) links. */
export function linkify(text: string): Part[] {
  const parts: Part[] = [];
  let last = 0;
  for (const m of text.matchAll(CANDIDATE)) {
    const start = m.index ?? 0;
    const url = m[0].replace(TRAILING, '');
    if (url.length === 0 || safeUrl(url) === null) continue;
    if (start > last) parts.push({ kind: 'text', text: text.slice(last, start) });
    parts.push({ kind: 'link', url });
    last = start + url.length;
  }
  if (last < text.length) parts.push({ kind: 'text', text: text.slice(last) });
  return parts;
}
