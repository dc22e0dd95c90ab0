import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/lib/bindings';
import { s } from '../src/lib/strings';

describe('error strings', () => {
  // ERROR_CODES comes from src-tauri (dto.rs), where a test checks that every code the
  // commands return is listed: a new code without a sentence here fails.
  it('has a sentence for every code a command can return', () => {
    const missing = ERROR_CODES.filter((code) => !(code in s.errors));
    expect(missing).toEqual([]);
    expect(ERROR_CODES).toContain('wrong_server');
    expect(ERROR_CODES).toContain('invalid_invite');
  });

  it('has the plain words for every way in', () => {
    for (const way of ['this_computer', 'local_network', 'server_in_use']) {
      expect(s.share.way[way]).toBeTruthy();
      expect(s.share.who[way]).toBeTruthy();
    }
  });
});
