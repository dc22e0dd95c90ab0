import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { flushSync } from 'svelte';

vi.mock('../src/lib/ipc', async () => ({ ipc: (await import('./ipc-mock')).ipc }));
import { ipc } from './ipc-mock';
import Room from '../src/lib/components/Room.svelte';
import Composer from '../src/lib/components/Composer.svelte';
import { applyEvent } from '../src/lib/model';
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

    applyEvent(m, { type: 'warning', code: 'unconfirmed', message: 'not confirmed by carol', id: 'm7' });
    flushSync();
    expect(screen.getByText(`⚠ ${s.room.unconfirmed}`)).toBeInTheDocument();
    expect(screen.getByText('⚠ not confirmed by carol')).toBeInTheDocument();
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
  it('shows the built-in server address and the join command for a room on it', async () => {
    ipc.localServer.mockResolvedValueOnce({
      domain: 'localhost',
      websocket_url: 'ws://localhost:5280/xmpp-websocket',
      bosh_url: 'http://localhost:5280/http-bind',
      c2s_port: 5222,
      join_command: 'cryptocat join --server ws://localhost:5280/xmpp-websocket --room lobby --nick NICK',
      local_network: false,
      lan_address: null,
      lan_join_command: null,
      certificate_fingerprint: 'AB:CD',
      certificate_path: '/tmp/x/localhost.pem',
    });
    render(Room, { model: reactive(room()), onleft: vi.fn() });
    expect(ipc.localServer).toHaveBeenCalledWith('lobby');
    expect(await screen.findByTestId('join-command')).toHaveTextContent(
      'cryptocat join --server ws://localhost:5280/xmpp-websocket --room lobby --nick NICK',
    );
    expect(screen.getByText(s.share.lanOff)).toBeInTheDocument();
    expect(screen.queryByTestId('lan-join-command')).toBeNull();
  });

  it('shows nothing for a room on another server', async () => {
    render(Room, { model: reactive(room()), onleft: vi.fn() });
    await Promise.resolve();
    expect(ipc.localServer).toHaveBeenCalledWith('lobby');
    expect(screen.queryByTestId('share')).toBeNull();
  });
});
