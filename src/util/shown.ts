// Show a user's input inside an error message: quoted and escaped, cut to a readable length.

/** JSON-quoted `value`, at most `max` characters of it, with its full length when it was cut. */
export function shown(value: string, max = 64): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max))}... (${value.length} characters)`;
}
