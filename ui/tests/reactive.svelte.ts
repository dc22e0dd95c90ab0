// A deeply reactive copy, as App.svelte holds its room models.
export function reactive<T extends object>(value: T): T {
  const r = $state(value);
  return r;
}
