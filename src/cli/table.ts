/** One column of a table: its heading and how to read a row's cell (null or empty prints as `-`). */
export interface Column<T> {
  heading: string;
  cell: (row: T) => string | number | null | undefined;
  /** Longer cells are cut to this many characters, with `…`. */
  max?: number;
}

/** Control characters (a newline in an error message, say) would break the alignment. */
function printable(value: string | number | null | undefined, max = Infinity): string {
  const text = value === null || value === undefined || value === '' ? '-' : String(value).replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Rows as a plain-text table with aligned columns, for people; scripts use `--json`. */
export function formatTable<T>(columns: readonly Column<T>[], rows: readonly T[]): string {
  const cells = rows.map((row) => columns.map((c) => printable(c.cell(row), c.max)));
  const widths = columns.map((c, i) => Math.max(c.heading.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  return [line(columns.map((c) => c.heading)), ...cells.map(line)].join('\n');
}

/** One record as aligned `label  value` lines, skipping empty values. */
export function formatRecord(fields: readonly [label: string, value: string | number | null | undefined][]): string {
  const shown = fields.filter(([, v]) => v !== null && v !== undefined && v !== '');
  const width = Math.max(0, ...shown.map(([label]) => label.length));
  return shown.map(([label, v]) => `${label.padEnd(width)}  ${printable(v)}`).join('\n');
}

/** An ISO timestamp as `2026-11-22 10:00:05Z`: seconds are plenty at a shell. */
export function shortTime(iso: string | null | undefined): string | null {
  return iso ? `${iso.slice(0, 19).replace('T', ' ')}Z` : null;
}
