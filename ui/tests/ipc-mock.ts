import { vi } from 'vitest';
import type { OpenedLink, Remembered, RoomInvites } from '../src/lib/bindings';
import type { Ipc } from '../src/lib/ipc';

// The IPC module, mocked: every command is a vi.fn the test programs (`satisfies`: the
// mock has exactly the module's functions, so a command added in Rust shows up here).
export const ipc = {
  join: vi.fn(),
  send: vi.fn(),
  sendPrivate: vi.fn(),
  ask: vi.fn(),
  answer: vi.fn(),
  markVerified: vi.fn(),
  members: vi.fn(),
  leave: vi.fn(),
  retryNow: vi.fn(async () => null),
  myFingerprint: vi.fn(),
  getSettings: vi.fn(),
  setSettings: vi.fn(),
  forgetRemembered: vi.fn(),
  openLink: vi.fn(),
  onOpenChat: vi.fn(async () => () => {}),
  invites: vi.fn(async (): Promise<RoomInvites> => ({ links: [], built_in: false, local_network: false })),
  renewRelayKey: vi.fn(async () => null),
  readInvite: vi.fn(),
  takeOpenedLink: vi.fn(async (): Promise<OpenedLink | null> => null),
  onOpenedLink: vi.fn(async () => () => {}),
  uiReady: vi.fn(async () => null),
  onEvent: vi.fn(async () => () => {}),
  onCloseRequested: vi.fn(async () => () => {}),
  quit: vi.fn(async () => null),
  setUnreadTotal: vi.fn(async () => null),
  getRemembered: vi.fn(async (): Promise<Remembered | null> => null),
  setRemembered: vi.fn(async () => null),
} satisfies Record<keyof Ipc, unknown>;
