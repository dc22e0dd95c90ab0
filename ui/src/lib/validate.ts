// The same checks as cryptocat-client's check_room_name and check_nickname, so that the
// Join screen can say what is wrong before anything starts. The Rust side checks again.

const MAX_ROOM_BYTES = 64;
const MAX_NICK_BYTES = 64;

const bytes = (text: string) => new TextEncoder().encode(text).length;

export function checkRoom(room: string): string | null {
  const ok =
    room.length > 0 &&
    bytes(room) <= MAX_ROOM_BYTES &&
    /^[\p{L}\p{N}\-_.]+$/u.test(room) &&
    !room.startsWith('.') &&
    !room.endsWith('.');
  return ok ? null : 'invalid_room';
}

export function checkNick(nick: string): string | null {
  const t = nick.trim();
  // eslint-disable-next-line no-control-regex
  const ok = t.length > 0 && bytes(t) <= MAX_NICK_BYTES && !/[\p{Cc}]/u.test(t);
  return ok ? null : 'invalid_nickname';
}

export function checkServerUrl(url: string): string | null {
  const t = url.trim();
  if (t.length === 0) return 'missing_server';
  // An invite link: Rust reads it (and says what is wrong with it).
  if (looksLikeLink(t)) return null;
  return /^(xmpp|ws|wss|http|https):\/\/[^\s/]+/i.test(t) ? null : 'invalid_server';
}

/** Whether the text is meant as an invite link (as Rust's `Invite::looks_like_link`): it
 * starts with `cryptocat:`. Rust reads it; this only picks which field's rules apply. */
export function looksLikeLink(text: string): boolean {
  return /^\s*cryptocat:/i.test(text);
}
