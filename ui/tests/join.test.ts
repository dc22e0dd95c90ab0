import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';

vi.mock('../src/lib/ipc', async () => ({ ipc: (await import('./ipc-mock')).ipc }));
import { ipc } from './ipc-mock';
import Join from '../src/lib/components/Join.svelte';
import { s } from '../src/lib/strings';
import { checkNick, checkRoom, checkServerUrl } from '../src/lib/validate';

beforeEach(() => vi.clearAllMocks());

describe('validation', () => {
  it('mirrors the engine checks', () => {
    expect(checkRoom('Lobby')).toBeNull();
    expect(checkRoom('a-b_c.d')).toBeNull();
    for (const bad of ['', 'a b', 'a@b', 'a/b', '.a', 'a.', 'a\u0000b', 'x'.repeat(65)])
      expect(checkRoom(bad), bad).toBe('invalid_room');
    expect(checkNick('  Alice ')).toBeNull();
    expect(checkNick('Zoë 🐱')).toBeNull();
    for (const bad of ['', '   ', 'a\nb', 'x'.repeat(65)]) expect(checkNick(bad), bad).toBe('invalid_nickname');
    expect(checkServerUrl('')).toBe('missing_server');
    expect(checkServerUrl('example.org')).toBe('invalid_server');
    expect(checkServerUrl('wss://example.org/xmpp-websocket')).toBeNull();
  });
});

describe('Join screen', () => {
  it('shows field errors and does not call join', async () => {
    const user = userEvent.setup();
    render(Join, { onjoined: vi.fn() });
    await user.type(screen.getByLabelText(s.join.room), 'bad room');
    await user.type(screen.getByLabelText(s.join.nick), '   ');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(screen.getByText(s.errors.invalid_room)).toBeInTheDocument();
    expect(screen.getByText(s.errors.invalid_nickname)).toBeInTheDocument();
    expect(screen.getByLabelText(s.join.room)).toHaveAttribute('aria-invalid', 'true');
    expect(ipc.join).not.toHaveBeenCalled();
  });

  it('asks for a server address when "another server" is picked', async () => {
    const user = userEvent.setup();
    render(Join, { onjoined: vi.fn() });
    await user.type(screen.getByLabelText(s.join.room), 'lobby');
    await user.type(screen.getByLabelText(s.join.nick), 'alice');
    await user.click(screen.getByLabelText(s.join.otherServer));
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(screen.getByText(s.errors.missing_server)).toBeInTheDocument();
    expect(ipc.join).not.toHaveBeenCalled();
  });

  it('joins on this computer by default and reports an unreachable server', async () => {
    const user = userEvent.setup();
    const onjoined = vi.fn();
    ipc.join.mockResolvedValueOnce({ room: 'lobby', nick: 'alice', fingerprint: 'ab' });
    render(Join, { onjoined });
    await user.type(screen.getByLabelText(s.join.room), 'Lobby');
    await user.type(screen.getByLabelText(s.join.nick), 'alice');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(ipc.join).toHaveBeenCalledWith({ room: 'Lobby', nick: 'alice', server: { kind: 'this_computer', local_network: false } });
    expect(onjoined).toHaveBeenCalledWith({ room: 'lobby', nick: 'alice', fingerprint: 'ab' });

    ipc.join.mockRejectedValueOnce({ code: 'unreachable', message: 'could not connect' });
    await user.click(screen.getByLabelText(s.join.otherServer));
    await user.type(screen.getByLabelText(s.join.serverUrl), 'xmpp://example.invalid');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(ipc.join).toHaveBeenLastCalledWith({
      room: 'Lobby',
      nick: 'alice',
      server: { kind: 'url', url: 'xmpp://example.invalid' },
    });
    expect(await screen.findByText(s.errors.unreachable)).toBeInTheDocument();
  });
});
