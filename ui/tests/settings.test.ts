import '@testing-library/jest-dom/vitest';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';

vi.mock('../src/lib/ipc', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/lib/ipc')>()),
  ipc: (await import('./ipc-mock')).ipc,
}));
import { ipc } from './ipc-mock';
import SettingsDialog from '../src/lib/components/SettingsDialog.svelte';
import { s } from '../src/lib/strings';
import { locale, setLocale } from '../src/lib/i18n';
import type { Settings } from '../src/lib/bindings';

const defaults: Settings = { show_content: false, mute: false, keep_in_tray: true, remember_identity: false, language: 'system' };

beforeEach(() => {
  vi.clearAllMocks();
  setLocale('en');
  ipc.getSettings.mockResolvedValue({ ...defaults });
  ipc.setSettings.mockImplementation(async (next: unknown) => next);
});

describe('settings panel', () => {
  it('shows the defaults: content hidden, not muted, tray on, nothing remembered', async () => {
    render(SettingsDialog, { onclose: vi.fn() });
    expect(await screen.findByRole('checkbox', { name: s.settings.showContent })).not.toBeChecked();
    expect(screen.getByRole('checkbox', { name: s.settings.mute })).not.toBeChecked();
    expect(screen.getByRole('checkbox', { name: s.settings.keepInTray })).toBeChecked();
    expect(screen.getByRole('checkbox', { name: s.settings.remember })).not.toBeChecked();
    expect(screen.getByRole('dialog', { name: s.settings.title })).toBeInTheDocument();
  });

  it('sends each change and is usable with the keyboard', async () => {
    const user = userEvent.setup();
    const onclose = vi.fn();
    render(SettingsDialog, { onclose });
    const content = await screen.findByRole('checkbox', { name: s.settings.showContent });
    await user.click(content);
    expect(ipc.setSettings).toHaveBeenLastCalledWith({ ...defaults, show_content: true });
    await user.tab();
    expect(screen.getByRole('checkbox', { name: s.settings.mute })).toHaveFocus();
    await user.keyboard(' ');
    expect(ipc.setSettings).toHaveBeenLastCalledWith({ ...defaults, show_content: true, mute: true });
    await user.keyboard('{Escape}');
    expect(onclose).toHaveBeenCalled();
  });

  it('shows the keyring error and leaves "remember" off', async () => {
    const user = userEvent.setup();
    ipc.setSettings.mockRejectedValueOnce({ code: 'keyring_unavailable', message: 'no keyring is available' });
    render(SettingsDialog, { onclose: vi.fn() });
    const remember = await screen.findByRole('checkbox', { name: s.settings.remember });
    await user.click(remember);
    expect(await screen.findByRole('alert')).toHaveTextContent(s.errors.keyring_unavailable);
    expect(remember).not.toBeChecked();
  });

  it('switches the language at once, the panel included, and back to the system\'s', async () => {
    const user = userEvent.setup();
    render(SettingsDialog, { onclose: vi.fn() });
    const picker = await screen.findByRole('combobox', { name: s.settings.language });
    expect(picker).toHaveValue('system');
    expect(picker).toHaveAccessibleDescription(s.settings.languageHint);
    // Each language is named in itself.
    expect(screen.getByRole('option', { name: 'العربية' })).toHaveAttribute('lang', 'ar');
    expect(screen.getByRole('option', { name: 'Français' })).toHaveAttribute('lang', 'fr');
    await user.selectOptions(picker, 'ar');
    expect(ipc.setSettings).toHaveBeenLastCalledWith({ ...defaults, language: 'ar' });
    expect(locale()).toBe('ar');
    expect(document.documentElement.dir).toBe('rtl');
    // Already redrawn in Arabic, without closing the panel.
    expect(await screen.findByRole('heading', { name: 'الإعدادات' })).toBeInTheDocument();
    expect(screen.getByRole('checkbox', { name: 'كتم الإشعارات' })).toBeInTheDocument();
    await user.selectOptions(screen.getByRole('combobox', { name: 'اللغة' }), 'system');
    expect(ipc.setSettings).toHaveBeenLastCalledWith({ ...defaults, language: 'system' });
    // jsdom's navigator speaks English.
    expect(locale()).toBe('en');
    expect(document.documentElement.dir).toBe('ltr');
    expect(await screen.findByRole('heading', { name: 'Settings' })).toBeInTheDocument();
  });

  it('keeps the language it had when the change is refused', async () => {
    const user = userEvent.setup();
    ipc.setSettings.mockRejectedValueOnce({ code: 'ipc', message: 'no answer' });
    render(SettingsDialog, { onclose: vi.fn() });
    await user.selectOptions(await screen.findByRole('combobox', { name: s.settings.language }), 'fr');
    expect(await screen.findByRole('alert')).toHaveTextContent(s.errors.ipc);
    expect(locale()).toBe('en');
    expect(screen.getByRole('combobox', { name: s.settings.language })).toHaveValue('system');
  });

  it('forgets what the keyring kept', async () => {
    const user = userEvent.setup();
    ipc.getSettings.mockResolvedValue({ ...defaults, remember_identity: true });
    ipc.forgetRemembered.mockResolvedValue({ ...defaults });
    render(SettingsDialog, { onclose: vi.fn() });
    expect(await screen.findByRole('checkbox', { name: s.settings.remember })).toBeChecked();
    await user.click(screen.getByRole('button', { name: s.settings.forget }));
    expect(ipc.forgetRemembered).toHaveBeenCalled();
    expect(await screen.findByText(s.settings.forgotten)).toBeInTheDocument();
    expect(screen.getByRole('checkbox', { name: s.settings.remember })).not.toBeChecked();
  });

  it('makes the built-in server a new key, and says old links stop working; refused while rooms use it', async () => {
    const user = userEvent.setup();
    ipc.renewRelayKey.mockRejectedValueOnce({ code: 'relay_key_in_use', message: 'rooms use it' });
    render(SettingsDialog, { onclose: vi.fn() });
    const renew = await screen.findByRole('button', { name: s.settings.renewKey });
    expect(renew).toHaveAccessibleDescription(s.settings.renewKeyHint);
    await user.click(renew);
    expect(await screen.findByRole('alert')).toHaveTextContent(s.errors.relay_key_in_use);
    await user.click(renew);
    expect(ipc.renewRelayKey).toHaveBeenCalledTimes(2);
    expect(await screen.findByText(s.settings.renewed)).toBeInTheDocument();
    expect(screen.queryByRole('alert')).toBeNull();
  });
});
