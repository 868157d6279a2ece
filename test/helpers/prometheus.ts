export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface ParsedFamily {
  help: string;
  type: string;
  samples: ParsedSample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;

/**
 * A strict reader of the text exposition format (0.0.4): HELP then TYPE before a family's samples,
 * sample names that belong to the family, label values with only the three escapes, numbers Go
 * can parse. Throws on anything else, so a test that parses a page has also validated it.
 */
export function parseExposition(text: string): Map<string, ParsedFamily> {
  if (!text.endsWith('\n')) throw new Error('the page must end with a newline');
  const families = new Map<string, ParsedFamily>();
  let current: { name: string; family: ParsedFamily } | null = null;
  let pendingHelp: { name: string; help: string } | null = null;
  for (const line of text.slice(0, -1).split('\n')) {
    const help = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
    if (help) {
      pendingHelp = { name: help[1]!, help: help[2]!.replace(/\\n/g, '\n').replace(/\\\\/g, '\\') };
      continue;
    }
    const type = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (type) {
      if (!pendingHelp || pendingHelp.name !== type[1]) throw new Error(`TYPE without its HELP: ${line}`);
      if (families.has(type[1]!)) throw new Error(`family ${type[1]} declared twice`);
      const family: ParsedFamily = { help: pendingHelp.help, type: type[2]!, samples: [] };
      families.set(type[1]!, family);
      current = { name: type[1]!, family };
      pendingHelp = null;
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m || !current) throw new Error(`not a valid exposition line: ${JSON.stringify(line)}`);
    const [, name, labelText, valueText] = m;
    const suffixes = current.family.type === 'histogram' ? ['_bucket', '_sum', '_count'] : [''];
    if (!suffixes.some((s) => name === current!.name + s)) throw new Error(`sample ${name} outside its family ${current.name}`);
    const labels: Record<string, string> = {};
    if (labelText) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < labelText.length) {
        const l = LABEL.exec(labelText);
        if (!l) throw new Error(`bad labels: ${labelText}`);
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    if (!/^([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]Inf|NaN)$/.test(valueText!)) throw new Error(`bad value ${valueText}`);
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    current.family.samples.push({ name: name!, labels, value });
  }
  return families;
}

/** The value of one series, or undefined when the page has no such series. */
export function sampleValue(page: Map<string, ParsedFamily>, name: string, labels: Record<string, string>): number | undefined {
  const family = page.get(name.replace(/_(bucket|sum|count)$/, '')) ?? page.get(name);
  return family?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
