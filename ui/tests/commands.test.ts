import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commands } from '../src/lib/bindings/commands';

// The commands come from Rust (bindings/commands.ts, generated from src-tauri's one list);
// the browser tests' stand-in for the Tauri runtime (e2e/tauri-stub.js) must answer each.
describe('the generated commands', () => {
  const calls: [string, Record<string, unknown>][] = [];
  const made = commands(async <T>(command: string, args: Record<string, unknown>) => {
    calls.push([command, args]);
    return null as T;
  });

  it('call Tauri by the Rust name with camelCase argument keys', async () => {
    await made.sendPrivate('room', 'bob', 'hi');
    await made.setSettings({ show_content: false, mute: false, keep_in_tray: true, remember_identity: false } as never);
    expect(calls).toEqual([
      ['send_private', { room: 'room', nick: 'bob', text: 'hi' }],
      ['set_settings', { next: { show_content: false, mute: false, keep_in_tray: true, remember_identity: false } }],
    ]);
  });

  it('are each answered by the browser tests\' stand-in', async () => {
    const stub = readFileSync(join(process.cwd(), 'e2e', 'tauri-stub.js'), 'utf8');
    const names = new Set<string>();
    const record = commands(async <T>(command: string) => {
      names.add(command);
      return null as T;
    });
    for (const f of Object.values(record)) await (f as (...a: unknown[]) => Promise<unknown>)();
    expect(names.size).toBe(Object.keys(record).length);
    const missing = [...names].filter((n) => !stub.includes(`case '${n}':`));
    expect(missing).toEqual([]);
  });
});
