// The only module that talks to the Rust side (the only import of @tauri-apps/api).
// Types come from ./bindings, generated from src-tauri/src/dto.rs.
import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import {
  CLOSE_REQUESTED_EVENT,
  ENGINE_EVENT,
  OPEN_CHAT_EVENT,
  OPENED_LINK_EVENT,
  type OpenChat,
  type Settings,
  type CommandError,
  type InviteView,
  type JoinRequest,
  type Joined,
  type Member,
  type OpenedLink,
  type Remembered,
  type RoomEvent,
  type RoomInvites,
} from './bindings';

export type {
  CommandError,
  InviteView,
  JoinRequest,
  Joined,
  Member,
  OpenChat,
  OpenedLink,
  Remembered,
  RoomEvent,
  RoomInvites,
  Settings,
};
export type { Connection, EngineEvent, InviteLink, ServerChoice, Way } from './bindings';

/** Turns whatever a rejected command gave into a CommandError. */
export function toCommandError(e: unknown): CommandError {
  if (e && typeof e === 'object' && 'code' in e && typeof (e as CommandError).code === 'string') {
    const ce = e as CommandError;
    return {
      code: ce.code,
      message: typeof ce.message === 'string' ? ce.message : '',
      seen_key: typeof ce.seen_key === 'string' ? ce.seen_key : null,
      detail: typeof ce.detail === 'string' ? ce.detail : null,
    };
  }
  return { code: 'ipc', message: String(e), seen_key: null, detail: null };
}

async function call<T>(cmd: string, args: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toCommandError(e);
  }
}

export const ipc = {
  join: (req: JoinRequest) => call<Joined>('join', { req }),
  send: (room: string, text: string) => call<number>('send', { room, text }),
  sendPrivate: (room: string, nick: string, text: string) =>
    call<null>('send_private', { room, nick, text }),
  ask: (room: string, nick: string, question: string | null, answer: string) =>
    call<null>('ask', { room, nick, question, answer }),
  answer: (room: string, nick: string, answer: string) =>
    call<null>('answer', { room, nick, answer }),
  markVerified: (room: string, nick: string, verified: boolean) =>
    call<null>('mark_verified', { room, nick, verified }),
  members: (room: string) => call<Member[]>('members', { room }),
  leave: (room: string) => call<null>('leave', { room }),
  /** While reconnecting: try at once instead of waiting out the delay. */
  retryNow: (room: string) => call<null>('retry_now', { room }),
  myFingerprint: (room: string) => call<string>('my_fingerprint', { room }),
  getSettings: () => call<Settings>('get_settings', {}),
  setSettings: (next: Settings) => call<Settings>('set_settings', { new: next }),
  forgetRemembered: () => call<Settings>('forget_remembered', {}),
  /** Opens an http(s) address in the system browser (Rust checks it again). */
  openLink: (url: string) => call<null>('open_link', { url }),
  /** Calls `handler` when a notification was clicked; resolves to an unsubscribe function. */
  onOpenChat: async (handler: (c: OpenChat) => void): Promise<() => void> =>
    listen<OpenChat>(OPEN_CHAT_EVENT, (e) => handler(e.payload)),
  /** The room's invite links, one per way in. */
  invites: (room: string) => call<RoomInvites>('invites', { room }),
  /** Makes the built-in server a new key (links made before stop working). */
  renewRelayKey: () => call<null>('renew_relay_key', {}),
  /** Reads an invite link (Rust parses it) for the join screen. */
  readInvite: (link: string) => call<InviteView>('read_invite', { link }),
  /** The invite link opened from outside that the window has not taken yet. */
  takeOpenedLink: () => call<OpenedLink | null>('take_opened_link', {}),
  /** Calls `handler` when an invite link was opened from outside; resolves to an unsubscribe function. */
  onOpenedLink: async (handler: () => void): Promise<() => void> => listen(OPENED_LINK_EVENT, () => handler()),
  /** Tells the app the join screen is up; resolves to the bench's auto-join, if any. */
  uiReady: () => call<JoinRequest | null>('ui_ready', {}),
  /** Calls `handler` when the window was closed while in a room with no tray to hide to:
   * the person confirms with `quit`, or stays. */
  onCloseRequested: async (handler: () => void): Promise<() => void> => listen(CLOSE_REQUESTED_EVENT, () => handler()),
  /** The server and nickname the person chose to have remembered, if any. */
  getRemembered: () => call<Remembered | null>('get_remembered', {}),
  /** Remembers the server and nickname for the next start, or forgets them (`null`). */
  setRemembered: (remembered: Remembered | null) => call<null>('set_remembered', { remembered }),
  /** Shows the unread total of every room in the window's title. */
  setUnread: (total: number) => call<null>('set_unread_total', { total }),
  /** Quits the app (every room is left on the way out). */
  quit: () => call<null>('quit', {}),
  /** Calls `handler` with every engine event; resolves to an unsubscribe function. */
  onEvent: async (handler: (e: RoomEvent) => void): Promise<() => void> =>
    listen<RoomEvent>(ENGINE_EVENT, (e) => handler(e.payload)),
};

export type Ipc = typeof ipc;
