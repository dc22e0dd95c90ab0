// The only module that talks to the Rust side (the only import of @tauri-apps/api).
// Types come from ./bindings, generated from src-tauri/src/dto.rs, and the commands from
// ./bindings/commands.ts, generated from src-tauri/src/command_list.rs.
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
import { commands } from './bindings/commands';

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
  // Every command, generated from Rust (bindings/commands.ts).
  ...commands(call),
  /** Calls `handler` when a notification was clicked; resolves to an unsubscribe function. */
  onOpenChat: async (handler: (c: OpenChat) => void): Promise<() => void> =>
    listen<OpenChat>(OPEN_CHAT_EVENT, (e) => handler(e.payload)),
  /** Calls `handler` when an invite link was opened from outside; resolves to an unsubscribe function. */
  onOpenedLink: async (handler: () => void): Promise<() => void> => listen(OPENED_LINK_EVENT, () => handler()),
  /** Calls `handler` when the window was closed while in a room with no tray to hide to:
   * the person confirms with `quit`, or stays. */
  onCloseRequested: async (handler: () => void): Promise<() => void> => listen(CLOSE_REQUESTED_EVENT, () => handler()),
  /** Calls `handler` with every engine event; resolves to an unsubscribe function. */
  onEvent: async (handler: (e: RoomEvent) => void): Promise<() => void> =>
    listen<RoomEvent>(ENGINE_EVENT, (e) => handler(e.payload)),
};

export type Ipc = typeof ipc;
