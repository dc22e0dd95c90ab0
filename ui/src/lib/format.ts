/** Groups a fingerprint's hex digits by four for reading aloud (spaced forms stay as they are). */
export function formatFingerprint(fp: string): string {
  if (/\s/.test(fp)) return fp;
  return (fp.match(/.{1,4}/g) ?? []).join(' ');
}
