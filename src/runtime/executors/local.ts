/**
 * The local executor: the grid's cells one after another in this process (what `triplex cv` has
 * always done), skipping the cells already done. A stop request ends the loop after the cell it
 * interrupts; that cell keeps its last checkpoint and resumes from it next time.
 */

export interface LocalCell<T> {
  key: string;
  done: () => boolean;
  /** Trains the cell; `stopped` when a stop request ended it early. */
  run: () => Promise<{ stopped: boolean; value?: T }>;
}

export interface LocalOutcome<T> {
  trained: Map<string, T>;
  skipped: string[];
  stopped: boolean;
}

export async function runLocal<T>(cells: readonly LocalCell<T>[], log: (line: string) => void = () => undefined): Promise<LocalOutcome<T>> {
  const trained = new Map<string, T>();
  const skipped: string[] = [];
  for (const cell of cells) {
    if (cell.done()) {
      skipped.push(cell.key);
      log(`${cell.key}: done in an earlier run; skipped`);
      continue;
    }
    const r = await cell.run();
    if (r.stopped) return { trained, skipped, stopped: true };
    if (r.value !== undefined) trained.set(cell.key, r.value);
  }
  return { trained, skipped, stopped: false };
}
