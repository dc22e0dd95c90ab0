import { vi } from 'vitest';

// The IPC module, mocked: every command is a vi.fn the test programs.
export const ipc = {
  join: vi.fn(),
  send: vi.fn(),
  sendPrivate: vi.fn(),
  ask: vi.fn(),
  answer: vi.fn(),
  markVerified: vi.fn(),
  members: vi.fn(),
  leave: vi.fn(),
  myFingerprint: vi.fn(),
  uiReady: vi.fn(async () => null),
  onEvent: vi.fn(async () => () => {}),
};
