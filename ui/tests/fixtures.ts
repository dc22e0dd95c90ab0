import type { Member } from '../src/lib/ipc';
import { newRoom, type RoomModel } from '../src/lib/model';

export const HOSTILE = '<img src=x onerror=alert(1)><script>alert(2)</script><b>bold</b>';

export const bob: Member = {
  nick: 'bob',
  fingerprint: '0123456789abcdef0123456789abcdef01234567',
  verified: false,
  safety_number: '12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890',
  safety_qr: Array.from({ length: 40 }, (_, i) => i),
  in_epoch: true,
};

export function room(): RoomModel {
  const m = newRoom({ room: 'lobby', nick: 'alice', fingerprint: 'fedcba9876543210fedcba9876543210fedcba98' });
  m.members.push({ ...bob });
  return m;
}
