import { describe, expect, it } from 'vitest';
import { ERROR_CODES, EVENT_ERROR_CODES } from '../src/lib/bindings';
import { toCommandError } from '../src/lib/ipc';
import { errorText, s } from '../src/lib/strings';

describe('error strings', () => {
  // ERROR_CODES and EVENT_ERROR_CODES come from src-tauri (dto.rs), where tests check that
  // every code the commands return and the engine sends is listed: a new code without a
  // sentence here fails.
  it('has a sentence for every code a command can return', () => {
    const missing = ERROR_CODES.filter((code) => !(code in s.errors));
    expect(missing).toEqual([]);
    expect(ERROR_CODES).toContain('wrong_server');
    expect(ERROR_CODES).toContain('invalid_invite');
    for (const code of ERROR_CODES) expect(errorText(code), code).not.toBe(s.errors.generic);
  });

  it('has a sentence for every error the engine sends while in a room', () => {
    const missing = EVENT_ERROR_CODES.filter((code) => !(code in s.errors));
    expect(missing).toEqual([]);
    expect(EVENT_ERROR_CODES).toContain('rejoin_failed');
  });

  it('has a sentence for what the UI makes of a command that failed oddly', () => {
    const e = toCommandError(new Error('boom'));
    expect(e.code).toBe('ipc');
    expect(errorText(e.code)).not.toBe(s.errors.generic);
  });

  it('has the plain words for every way in', () => {
    for (const way of ['this_computer', 'local_network', 'server_in_use']) {
      expect(s.share.way[way]).toBeTruthy();
      expect(s.share.who[way]).toBeTruthy();
    }
  });
});
