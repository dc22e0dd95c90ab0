import '@testing-library/jest-dom/vitest';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';

vi.mock('../src/lib/ipc', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/lib/ipc')>()),
  ipc: (await import('./ipc-mock')).ipc,
}));
import { ipc } from './ipc-mock';
import Room from '../src/lib/components/Room.svelte';
import { applyEvent } from '../src/lib/model';
import { linkify, safeUrl } from '../src/lib/links';
import { s } from '../src/lib/strings';
import { room } from './fixtures';
import { reactive } from './reactive.svelte';

beforeEach(() => vi.clearAllMocks());

describe('linkify', () => {
  it('finds http and https addresses and leaves trailing punctuation out', () => {
    expect(linkify('go to https://example.org/x?y=1, or http://a.example.')).toEqual([
      { kind: 'text', text: 'go to ' },
      { kind: 'link', url: 'https://example.org/x?y=1' },
      { kind: 'text', text: ', or ' },
      { kind: 'link', url: 'http://a.example' },
      { kind: 'text', text: '.' },
    ]);
  });

  it('never makes links of hostile schemes', () => {
    const hostile = [
      'javascript:alert(1)',
      'JaVaScRiPt:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'file:///etc/passwd',
      'vbscript:msgbox(1)',
      'ftp://example.org/',
      'https://user:pw@example.org/',
      'https://bank.example@evil.example/',
      '<a href="javascript:alert(1)">x</a>',
    ];
    for (const t of hostile) {
      expect(linkify(t).filter((p) => p.kind === 'link'), t).toEqual([]);
    }
    expect(safeUrl('javascript://example.org/%0aalert(1)')).toBeNull();
    expect(safeUrl('https://')).toBeNull();
    expect(safeUrl('https://example.org/')).toBe('https://example.org/');
  });

  it('keeps the whole text', () => {
    const t = 'a https://x.example/ b javascript:void(0) c';
    expect(
      linkify(t)
        .map((p) => (p.kind === 'link' ? p.url : p.text))
        .join(''),
    ).toBe(t);
  });
});

describe('links in messages', () => {
  it('open in the browser only after confirmation', async () => {
    const user = userEvent.setup();
    const m = reactive(room());
    applyEvent(m, { type: 'message', id: 'g1', nick: 'bob', text: 'look https://example.org/p and javascript:alert(1)', private: false });
    ipc.openLink.mockResolvedValue(null);
    const { container } = render(Room, { model: m, onleft: vi.fn() });
    expect(container.querySelector('.messages a')).toBeNull();
    const log = screen.getByRole('log', { name: s.room.conversation });
    const links = within(log).getAllByRole('button');
    expect(links).toHaveLength(1);

    await user.click(links[0]);
    const dialog = screen.getByRole('alertdialog', { name: s.links.title });
    expect(within(dialog).getByText('https://example.org/p')).toBeInTheDocument();
    expect(ipc.openLink).not.toHaveBeenCalled();
    await user.click(within(dialog).getByRole('button', { name: s.links.cancel }));
    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(ipc.openLink).not.toHaveBeenCalled();

    await user.click(links[0]);
    await user.click(screen.getByRole('button', { name: s.links.open }));
    expect(ipc.openLink).toHaveBeenCalledWith('https://example.org/p');
    expect(screen.queryByRole('alertdialog')).toBeNull();
  });
});
