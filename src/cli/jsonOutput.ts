/**
 * `--json` for the commands whose result a script reads (cv, predict, evaluate, benchmark): the
 * progress and notes go to stderr, and stdout carries one line of JSON, the summary, with
 * non-finite numbers (an undefined PCC) written as null. Without it, everything is text on stdout.
 */
export interface CommandOutput {
  /** Progress and notes. */
  log: (line: string) => void;
  /** The result: `text()` as lines, or `value` as one line of JSON. */
  result: (text: () => string, value: unknown) => void;
}

export function commandOutput(json: boolean | undefined): CommandOutput {
  return {
    log: json ? (line) => console.error(line) : (line) => console.log(line),
    result: (text, value) => console.log(json ? JSON.stringify(value, (_, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)) : text()),
  };
}

export const JSON_OPTION = ['--json', 'print the summary as one line of JSON on stdout (progress and notes go to stderr)'] as const;
