/**
 * Duplicate keys in a JSON text. JSON.parse keeps the last of `{"plan":"free","plan":"pro"}`,
 * so two readers of the same body (a proxy, an audit log, us) can disagree on what it says:
 * such a body is refused. The full scan runs only when a cheap count cannot rule duplicates
 * out: every key is followed by a `:`, so a text with no more colons than the parsed value
 * has keys has none.
 */

/** Keys of every object in a parsed JSON value. */
function countKeys(value: unknown): number {
  let count = 0;
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (v === null || typeof v !== "object") continue;
    if (Array.isArray(v)) {
      for (const item of v) if (item !== null && typeof item === "object") stack.push(item);
      continue;
    }
    for (const key in v) {
      count++;
      const item = (v as Record<string, unknown>)[key];
      if (item !== null && typeof item === "object") stack.push(item);
    }
  }
  return count;
}

/** Whether `text` has more than `n` colons (stops counting there). */
function moreColonsThan(text: string, n: number): boolean {
  let count = 0;
  for (let i = text.indexOf(":"); i !== -1; i = text.indexOf(":", i + 1)) if (++count > n) return true;
  return false;
}

/** The index of the quote that closes the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  let j = start;
  for (;;) {
    j = text.indexOf('"', j + 1);
    if (j === -1) return text.length;
    let backslashes = 0;
    for (let k = j - 1; text.charCodeAt(k) === 92; k--) backslashes++;
    if (backslashes % 2 === 0) return j;
  }
}

const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;

/** The first key that appears twice in one object of a VALID JSON text, or null. */
export function findDuplicateKey(text: string): string | null {
  // One Set per open object; null marks an open array.
  const open: (Set<string> | null)[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      const end = stringEnd(text, i);
      const keys = open[open.length - 1];
      if (keys) {
        let j = end + 1;
        while (isSpace(text.charCodeAt(j))) j++;
        if (text.charCodeAt(j) === 58) {
          const raw = text.slice(i + 1, end);
          const key = raw.includes("\\") ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
          if (keys.has(key)) return key;
          keys.add(key);
          i = j + 1;
          continue;
        }
      }
      i = end + 1;
      continue;
    }
    if (c === 123) open.push(new Set());
    else if (c === 91) open.push(null);
    else if (c === 125 || c === 93) open.pop();
    i++;
  }
  return null;
}

/** Like findDuplicateKey, but skips the scan when counting proves there is no duplicate. */
export function duplicateKeyIn(text: string, parsed: unknown): string | null {
  if (parsed === null || typeof parsed !== "object") return null;
  if (!moreColonsThan(text, countKeys(parsed))) return null;
  return findDuplicateKey(text);
}
