import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { flushSync } from 'svelte';

vi.mock('../src/lib/ipc', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/lib/ipc')>()),
  ipc: (await import('./ipc-mock')).ipc,
}));
import { ipc } from './ipc-mock';
import Room from '../src/lib/components/Room.svelte';
import Composer from '../src/lib/components/Composer.svelte';
import { addOwnGroup, applyEvent, setFocused, totalUnread, view } from '../src/lib/model';
import { s } from '../src/lib/strings';
import { HOSTILE, bob, room } from './fixtures';
import { reactive } from './reactive.svelte';

beforeEach(() => vi.clearAllMocks());

describe('messages', () => {
  it('render hostile text as text', () => {
    const m = reactive(room());
    applyEvent(m, { type: 'message', id: 'g1', nick: 'bob', text: HOSTILE, private: false });
    const { container } = render(Room, { model: m, onleft: vi.fn() });
    const log = screen.getByRole('log', { name: s.room.conversation });
    expect(within(log).getByText(HOSTILE)).toBeInTheDocument();
    expect(container.querySelector('img, script, b')).toBeNull();
  });

  it('show the confirmation progress and the flagged state', async () => {
    const user = userEvent.setup();
    const m = reactive(room());
    m.members.push({ ...bob, nick: 'carol' });
    ipc.send.mockResolvedValueOnce(7);
    render(Room, { model: m, onleft: vi.fn() });
    await user.type(screen.getByLabelText(s.room.composer), 'hello{Enter}');
    expect(ipc.send).toHaveBeenCalledWith('lobby', 'hello');
    expect(screen.getByText(s.room.sending)).toBeInTheDocument();

    applyEvent(m, { type: 'sent', local_id: 7, id: 'm7' });
    flushSync();
    expect(screen.getByText(s.room.confirmed(0, 2))).toBeInTheDocument();
    applyEvent(m, { type: 'confirmation', id: 'm7', confirmed: 1, of: 2 });
    flushSync();
    expect(screen.getByText(s.room.confirmed(1, 2))).toBeInTheDocument();
    const bar = screen.getByRole('progressbar', { name: s.room.confirmBar });
    expect(bar).toHaveAttribute('max', '2');
    expect((bar as HTMLProgressElement).value).toBe(1);

    applyEvent(m, { type: 'warning', code: 'unconfirmed', message: 'not confirmed by carol', id: 'm7', who: ['carol'] });
    flushSync();
    expect(screen.getByText(s.room.unconfirmed)).toBeInTheDocument();
    expect(screen.getByText('A message was not confirmed by carol in time.')).toBeInTheDocument();
  });

  it('opens a private chat from the member list and sends there', async () => {
    const user = userEvent.setup();
    const m = reactive(room());
    ipc.sendPrivate.mockResolvedValueOnce(null);
    render(Room, { model: m, onleft: vi.fn() });
    await user.click(screen.getByRole('button', { name: s.room.openPrivate('bob') }));
    expect(screen.getByRole('tab', { name: s.room.privateWith('bob') })).toHaveAttribute('aria-selected', 'true');
    await user.type(screen.getByLabelText(s.room.composerPrivate('bob')), 'psst{Enter}');
    expect(ipc.sendPrivate).toHaveBeenCalledWith('lobby', 'bob', 'psst');
    expect(within(screen.getByRole('log', { name: s.room.privateWith('bob') })).getByText('psst')).toBeInTheDocument();
  });
});

describe('composer', () => {
  it('sends on Enter and adds a line on Shift+Enter', async () => {
    const user = userEvent.setup();
    const onsend = vi.fn(async () => true);
    render(Composer, { label: 'Message', onsend });
    const box = screen.getByLabelText('Message') as HTMLTextAreaElement;
    await user.type(box, 'line one{Shift>}{Enter}{/Shift}line two');
    expect(onsend).not.toHaveBeenCalled();
    expect(box.value).toBe('line one\nline two');
    await user.type(box, '{Enter}');
    expect(onsend).toHaveBeenCalledWith('line one\nline two');
    expect(box.value).toBe('');
  });

  it('keeps the text when sending fails, and ignores blank text', async () => {
    const user = userEvent.setup();
    const onsend = vi.fn(async () => false);
    render(Composer, { label: 'Message', onsend });
    const box = screen.getByLabelText('Message') as HTMLTextAreaElement;
    await user.type(box, '   {Enter}');
    expect(onsend).not.toHaveBeenCalled();
    await user.clear(box);
    await user.type(box, 'hi{Enter}');
    expect(onsend).toHaveBeenCalledWith('hi');
    expect(box.value).toBe('hi');
  });
});

describe('invite someone', () => {
  const PIN = 'sha256/' + 'A'.repeat(43);
  const link = (server: string) => `cryptocat://join?v=1&server=${server}&domain=localhost&pin=${PIN}&room=lobby`;

  it('shows one link per way in, with who can use it, a QR code and the terminal command', async () => {
    const user = userEvent.setup();
    ipc.invites.mockResolvedValueOnce({
      links: [
        {
          way: 'this_computer',
          link: link('xmpp://127.0.0.1:5222'),
          join_command: `cryptocat join "${link('xmpp://127.0.0.1:5222')}" --nick NICK`,
          hosts: ['127.0.0.1', 'localhost'],
          pinned: true,
        },
        {
          way: 'local_network',
          link: link('xmpp://192.168.1.20:5222'),
          join_command: `cryptocat join "${link('xmpp://192.168.1.20:5222')}" --nick NICK`,
          hosts: ['192.168.1.20'],
          pinned: true,
        },
      ],
      built_in: true,
      local_network: true,
    });
    render(Room, { model: reactive(room()), onleft: vi.fn() });
    await user.click(screen.getByRole('button', { name: s.share.title }));
    const dialog = await screen.findByRole('dialog', { name: s.share.title });
    expect(ipc.invites).toHaveBeenCalledWith('lobby');
    expect(await within(dialog).findByTestId('invite-link-this_computer')).toHaveTextContent(link('xmpp://127.0.0.1:5222'));
    expect(within(dialog).getByTestId('invite-link-local_network')).toHaveTextContent(link('xmpp://192.168.1.20:5222'));
    expect(within(dialog).getByText(s.share.who.this_computer)).toBeInTheDocument();
    expect(within(dialog).getByText(s.share.who.local_network)).toBeInTheDocument();
    expect(within(dialog).queryByText(s.share.who.server_in_use)).toBeNull();
    expect(within(dialog).getByRole('img', { name: s.share.qr(s.share.way.this_computer) })).toBeInTheDocument();
    expect(within(dialog).getByTestId('invite-command-this_computer')).toHaveTextContent(
      `cryptocat join "${link('xmpp://127.0.0.1:5222')}" --nick NICK`,
    );
    expect(within(dialog).queryByTestId('invite-lan-off')).toBeNull();
    expect(within(dialog).queryByTestId('invite-no-lan')).toBeNull();

    // Copy: the link goes to the clipboard, the button says so.
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    await user.click(within(dialog).getByTestId('copy-local_network'));
    expect(writeText).toHaveBeenCalledWith(link('xmpp://192.168.1.20:5222'));
    expect(within(dialog).getByTestId('copy-local_network')).toHaveTextContent(s.share.copied);
    // No clipboard: the link is selected instead, and the panel says how to copy it.
    writeText.mockRejectedValueOnce(new Error('denied'));
    await user.click(within(dialog).getByTestId('copy-this_computer'));
    expect(within(dialog).getByText(s.share.copyFailed)).toBeInTheDocument();
    expect(window.getSelection()?.toString()).toBe(link('xmpp://127.0.0.1:5222'));
  });

  it('says when the built-in server is on this computer only, or found no network address', async () => {
    const user = userEvent.setup();
    const one = {
      way: 'this_computer' as const,
      link: link('xmpp://127.0.0.1:5222'),
      join_command: 'x',
      hosts: ['127.0.0.1'],
      pinned: true,
    };
    ipc.invites.mockResolvedValueOnce({ links: [one], built_in: true, local_network: false });
    const { unmount } = render(Room, { model: reactive(room()), onleft: vi.fn() });
    await user.click(screen.getByRole('button', { name: s.share.title }));
    expect(await screen.findByText(s.share.lanOff)).toBeInTheDocument();
    unmount();
    ipc.invites.mockResolvedValueOnce({ links: [one], built_in: true, local_network: true });
    render(Room, { model: reactive(room()), onleft: vi.fn() });
    await user.click(screen.getByRole('button', { name: s.share.title }));
    expect(await screen.findByText(s.share.noLan)).toBeInTheDocument();
  });

  it('offers the server in use for a room on another server', async () => {
    const user = userEvent.setup();
    const l = 'cryptocat://join?v=1&server=wss://chat.example.org/xmpp-websocket&room=lobby';
    ipc.invites.mockResolvedValueOnce({
      links: [{ way: 'server_in_use', link: l, join_command: `cryptocat join "${l}" --nick NICK`, hosts: ['chat.example.org'], pinned: false }],
      built_in: false,
      local_network: false,
    });
    render(Room, { model: reactive(room()), onleft: vi.fn() });
    await user.click(screen.getByRole('button', { name: s.share.title }));
    const dialog = await screen.findByRole('dialog', { name: s.share.title });
    expect(await within(dialog).findByTestId('invite-link-server_in_use')).toHaveTextContent(l);
    expect(within(dialog).getByText(s.share.who.server_in_use)).toBeInTheDocument();
    expect(within(dialog).queryByText(s.share.lanOff)).toBeNull();
    await user.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).toBeNull();
  });
});

describe('unread and the "new messages" line', () => {
  const msg = (id: string, priv = false) => ({ type: 'message' as const, id, nick: 'bob', text: id, private: priv });

  it('counts per chat what arrives off screen or unfocused, and marks where it starts', () => {
    const m = room();
    applyEvent(m, msg('g1'));
    expect(totalUnread(m)).toBe(0);
    view(m, 'bob');
    applyEvent(m, msg('g2'));
    applyEvent(m, msg('g3'));
    applyEvent(m, msg('p1', true));
    expect(m.unread).toEqual({ '': 2 });
    view(m, null);
    expect(totalUnread(m)).toBe(0);
    expect(m.divider['']).toBe(m.group[1]?.key);
    // Unfocused: the chat on screen counts too, and the line moves on focus.
    setFocused(m, false);
    applyEvent(m, msg('g4'));
    expect(m.unread).toEqual({ '': 1 });
    setFocused(m, true);
    expect(m.divider['']).toBe(m.group[3]?.key);
    expect(totalUnread(m)).toBe(0);
    // Leaving the chat takes its line away.
    view(m, 'bob');
    expect(m.divider['']).toBeUndefined();
  });

  it('writing counts as having seen the chat', () => {
    const m = room();
    setFocused(m, false);
    applyEvent(m, msg('g1'));
    addOwnGroup(m, 1, 'hi');
    expect(totalUnread(m)).toBe(0);
  });
});

describe('leaving', () => {
  it('asks first, and leaves only when confirmed', async () => {
    const user = userEvent.setup();
    const onleft = vi.fn();
    ipc.leave.mockResolvedValue(null);
    render(Room, { model: reactive(room()), onleft });
    await user.click(screen.getByRole('button', { name: s.room.leave }));
    await user.click(screen.getByRole('button', { name: s.room.leaveCancel }));
    expect(ipc.leave).not.toHaveBeenCalled();
    await user.click(screen.getByRole('button', { name: s.room.leave }));
    await user.click(screen.getByRole('button', { name: s.room.leaveConfirm }));
    expect(ipc.leave).toHaveBeenCalledWith('lobby');
    expect(onleft).toHaveBeenCalled();
  });
});
