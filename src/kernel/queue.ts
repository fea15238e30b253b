/**
 * First in, first out: cells run one after another in the order they were asked for, across run
 * requests; when one fails, the cells queued after it are cancelled (as in Jupyter: they would
 * run on a state the failed cell did not make).
 */
export interface QueuedCell {
  /** Runs the cell; resolves true when it succeeded. */
  run(): Promise<boolean>;
  /** Called instead of run() for a cell that will not run. */
  cancel(): void;
}

interface Entry { cell: QueuedCell; settled: () => void }

export class CellQueue {
  private readonly entries: Entry[] = [];
  private draining = false;

  /** Queues the cells; resolves when each has run or been cancelled. */
  enqueue(cells: readonly QueuedCell[]): Promise<void> {
    const done = cells.map((cell) => new Promise<void>((settled) => this.entries.push({ cell, settled })));
    void this.drain();
    return Promise.all(done).then(() => undefined);
  }

  /** Cancels the cells waiting to run (the running one is the kernel's to stop). */
  cancelPending(): void {
    for (const entry of this.entries.splice(0)) {
      entry.cell.cancel();
      entry.settled();
    }
  }

  /** Cancels one waiting cell; false when it is not waiting (running, done, or unknown). */
  cancel(cell: QueuedCell): boolean {
    const i = this.entries.findIndex((e) => e.cell === cell);
    if (i < 0) return false;
    const [entry] = this.entries.splice(i, 1);
    entry.cell.cancel();
    entry.settled();
    return true;
  }

  get pending(): number {
    return this.entries.length;
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let entry = this.entries.shift(); entry; entry = this.entries.shift()) {
        let ok = false;
        try {
          ok = await entry.cell.run();
        } catch (err) {
          console.error('a queued cell failed to run:', err); // run() reports its own failures; this is a bug
        } finally {
          entry.settled();
        }
        if (!ok) this.cancelPending();
      }
    } finally {
      this.draining = false;
    }
  }
}
