// What the UI knows about a joined room, and how engine events change it. Plain data and
// functions (no Svelte, no IPC) so that they can be tested alone; App.svelte keeps the
// models in $state.
import type { Connection, EngineEvent, Joined, Member } from './ipc';

export interface ChatMessage {
  /** Unique key for rendering. */
  key: string;
  /** Message id from the engine (ours: once `sent` arrived). */
  id: string | null;
  /** Our local id (`send`'s result), for our group texts. */
  localId: number | null;
  from: string;
  text: string;
  mine: boolean;
  /** When it was sent (ours) or arrived (others'), in ms since the epoch, this computer's clock. */
  at: number;
}

/** A chat of the room: `null` for the group conversation, else a member's nickname. */
export type Chat = string | null;

/** The key of a chat in the per-chat records (a nickname is never empty). */
export const chatKey = (chat: Chat): string => (chat === null ? '' : `@${chat}`);

export interface Notice {
  key: number;
  /** `warning`: the engine's sentence is shown; `error`: the UI's sentence for the code. */
  kind: 'warning' | 'error';
  code: string;
  message: string;
  /** The members a warning names (the member concerned first, then who reported it). */
  who: string[];
  /** A number a warning carries (`rejoin_incomplete`). */
  count: number | null;
}

export interface RoomModel {
  room: string;
  nick: string;
  fingerprint: string;
  connection: Connection;
  members: Member[];
  group: ChatMessage[];
  /** Private chats by member nickname. */
  privates: Record<string, ChatMessage[]>;
  /** Message id of each of our group texts, by local id. */
  sentIds: Record<number, string>;
  /** Confirmation progress by message id. */
  confirmations: Record<string, { confirmed: number; of: number }>;
  /** Ids of our texts that an `unconfirmed` warning flagged. */
  flagged: Record<string, true>;
  warnings: Notice[];
  /** Open secret questions from members, by nickname. */
  questions: Record<string, { question: string | null }>;
  /** Last secret-question result, by nickname. */
  results: Record<string, boolean>;
  left: boolean;
  /** The chat on screen. */
  viewing: Chat;
  /** The window has the focus (messages in the chat on screen are then seen). */
  focused: boolean;
  /** Messages not seen yet, by chat key. */
  unread: Record<string, number>;
  /** The first message not seen yet, by chat key (where the "new messages" line goes once
   * the chat is looked at). */
  firstUnread: Record<string, string>;
  /** Where the "new messages" line is drawn, by chat key (the message key it goes above). */
  divider: Record<string, string>;
  /** When the connection last changed (ms since the epoch): the reconnection countdown
   * counts `delay_ms` from here. */
  connectionAt: number;
}

let counter = 0;
const nextKey = () => `k${++counter}`;

export function newRoom(j: Joined): RoomModel {
  return {
    room: j.room,
    nick: j.nick,
    fingerprint: j.fingerprint,
    connection: { state: 'connected' },
    members: [],
    group: [],
    privates: {},
    sentIds: {},
    confirmations: {},
    flagged: {},
    warnings: [],
    questions: {},
    results: {},
    left: false,
    viewing: null,
    focused: true,
    unread: {},
    firstUnread: {},
    divider: {},
    connectionAt: Date.now(),
  };
}

/** Adds one of our group texts (before `sent` names it). */
export function addOwnGroup(m: RoomModel, localId: number, text: string, at = Date.now()): void {
  m.group.push({ key: nextKey(), id: null, localId, from: m.nick, text, mine: true, at });
  // Writing is looking: what came before is seen.
  seen(m, null);
}

/** The private chat with `nick`, created if needed. Re-read after assigning: under a
 * Svelte $state proxy the assigned array is not the reactive one. */
function privateChat(m: RoomModel, nick: string): ChatMessage[] {
  if (!m.privates[nick]) m.privates[nick] = [];
  return m.privates[nick];
}

/** Adds one of our private texts. */
export function addOwnPrivate(m: RoomModel, to: string, text: string, at = Date.now()): void {
  privateChat(m, to).push({
    key: nextKey(),
    id: null,
    localId: null,
    from: m.nick,
    text,
    mine: true,
    at,
  });
  seen(m, to);
}

/** Unread messages in every chat of the room. */
export function totalUnread(m: RoomModel): number {
  return Object.values(m.unread).reduce((a, b) => a + b, 0);
}

/** The person looks at `chat` now: its unread count goes, and the "new messages" line
 * moves to the first message they had not seen (or goes, when there was none). */
export function seen(m: RoomModel, chat: Chat): void {
  const k = chatKey(chat);
  const first = m.firstUnread[k];
  if (first) m.divider[k] = first;
  delete m.firstUnread[k];
  delete m.unread[k];
}

/** Switches the chat on screen (and marks it seen). */
export function view(m: RoomModel, chat: Chat): void {
  // The line of the chat left behind goes: next time, only what is new then is marked.
  if (m.viewing !== chat) delete m.divider[chatKey(m.viewing)];
  m.viewing = chat;
  if (m.focused) seen(m, chat);
}

/** The window got (`true`) or lost the focus. */
export function setFocused(m: RoomModel, focused: boolean): void {
  m.focused = focused;
  if (focused) seen(m, m.viewing);
}

/** A message arrived in `chat`: unread unless the person is looking at that chat. */
function arrived(m: RoomModel, chat: Chat, msg: ChatMessage): void {
  if (m.focused && m.viewing === chat) return;
  const k = chatKey(chat);
  m.unread[k] = (m.unread[k] ?? 0) + 1;
  if (!m.firstUnread[k]) m.firstUnread[k] = msg.key;
}

/** The engine id of a message (ours: from `sent`, whichever arrived first). */
export function messageId(m: RoomModel, msg: ChatMessage): string | null {
  if (msg.id) return msg.id;
  if (msg.localId !== null) return m.sentIds[msg.localId] ?? null;
  return null;
}

export interface Progress {
  sent: boolean;
  confirmed: number;
  of: number;
  flagged: boolean;
}

/** Confirmation progress of one of our group texts. */
export function progress(m: RoomModel, msg: ChatMessage): Progress {
  const id = messageId(m, msg);
  if (!id) return { sent: false, confirmed: 0, of: othersInEpoch(m), flagged: false };
  const c = m.confirmations[id];
  return {
    sent: true,
    confirmed: c?.confirmed ?? 0,
    of: c?.of ?? othersInEpoch(m),
    flagged: m.flagged[id] === true,
  };
}

function othersInEpoch(m: RoomModel): number {
  return m.members.filter((x) => x.in_epoch).length;
}

let warningKey = 0;

/** Applies one engine event. */
export function applyEvent(m: RoomModel, e: EngineEvent): void {
  switch (e.type) {
    case 'connection': {
      // The event is the connection's state with the event's `type` beside it.
      const { type: _, ...connection } = e;
      m.connection = connection;
      m.connectionAt = Date.now();
      break;
    }
    case 'joined':
      m.nick = e.nick;
      m.fingerprint = e.fingerprint;
      break;
    case 'member_joined': {
      // The member's fields, with the event's `type` beside them.
      const { type: _, ...member } = e;
      const i = m.members.findIndex((x) => x.nick === member.nick);
      if (i >= 0) m.members[i] = member;
      else m.members.push(member);
      break;
    }
    case 'member_left':
      m.members = m.members.filter((x) => x.nick !== e.nick);
      break;
    case 'rekeyed':
      break;
    case 'sent':
      m.sentIds[e.local_id] = e.id;
      break;
    case 'message': {
      const msg: ChatMessage = {
        key: nextKey(),
        id: e.id,
        localId: null,
        from: e.nick,
        text: e.text,
        mine: false,
        at: Date.now(),
      };
      if (e.private) privateChat(m, e.nick).push(msg);
      else m.group.push(msg);
      arrived(m, e.private ? e.nick : null, msg);
      break;
    }
    case 'private_sent':
      break;
    case 'confirmation':
      m.confirmations[e.id] = { confirmed: e.confirmed, of: e.of };
      break;
    case 'question':
      m.questions[e.nick] = { question: e.question };
      break;
    case 'verification': {
      const member = m.members.find((x) => x.nick === e.nick);
      if (member) member.verified = e.verified;
      if (!e.manual) {
        m.results[e.nick] = e.verified;
        delete m.questions[e.nick];
      }
      break;
    }
    case 'warning':
      if (e.code === 'unconfirmed' && e.id) m.flagged[e.id] = true;
      m.warnings.push({ key: ++warningKey, kind: 'warning', code: e.code, message: e.message, who: e.who ?? [], count: e.count ?? null });
      break;
    case 'error':
      m.warnings.push({ key: ++warningKey, kind: 'error', code: e.code, message: e.message, who: [], count: null });
      break;
    case 'left':
      m.left = true;
      m.connection = { state: 'offline' };
      m.connectionAt = Date.now();
      break;
  }
}
