import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../store/atomic';

/**
 * A grid of training cells (model x fold) and what each finished cell leaves behind. A cell is
 * one `triplex train-fold` invocation writing its own folder; it is done when its record,
 * `<cell>/cell.json`, exists with the settings it was asked for (more epochs later means more
 * training, resumed from the last checkpoint). The record is written atomically, last, after the
 * cell's predictions: a cell killed at any moment is either done or not, never half done. It
 * names the executor (and Slurm job) that produced it, so a run folder says where each cell ran.
 */

export const CELL_RECORD = 'cell.json';

export interface GridCell {
  /** Unique within the grid and readable: `<model>/fold-<k>`. */
  key: string;
  /** The cell's folder (a cv run folder's `fold-<k>`). */
  dir: string;
  /** Arguments of the `triplex` command line that trains this cell alone (`train-fold ... --cell-only`). */
  args: string[];
  /** What a record must say to count as this cell done (epochs, patience). */
  settings: Record<string, string | number>;
}

/** What produced a cell, and its training summary. */
export interface CellRecord {
  cell: string;
  executor: 'local' | 'slurm';
  /** Slurm's `<array job>_<task>` (or the job id) when a Slurm task trained it. */
  job?: string;
  host: string;
  finished: string;
  settings: Record<string, string | number>;
  training: { test: string[]; validation: string[]; bestEpoch: number; epochsRun: number; bestValidationPcc: number | null; stoppedEarly: boolean; checkpoint: string };
}

export function readCellRecord(dir: string): CellRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(dir, CELL_RECORD), 'utf8')) as CellRecord;
    return r && typeof r === 'object' && r.training ? r : undefined;
  } catch {
    return undefined; // absent, or not ours: the cell is trained (again, resuming)
  }
}

/** The cell's record when it finished with the same settings. */
export function finishedCell(cell: Pick<GridCell, 'dir' | 'settings'>): CellRecord | undefined {
  const r = readCellRecord(cell.dir);
  if (!r) return undefined;
  return Object.entries(cell.settings).every(([k, v]) => r.settings?.[k] === v) ? r : undefined;
}

/** The executor of this process: a Slurm task when Slurm's variables say so. */
export function currentExecutor(env: NodeJS.ProcessEnv = process.env): Pick<CellRecord, 'executor' | 'job' | 'host'> {
  const array = env.SLURM_ARRAY_JOB_ID && env.SLURM_ARRAY_TASK_ID ? `${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID}` : undefined;
  const job = array ?? env.SLURM_JOB_ID;
  return job ? { executor: 'slurm', job, host: os.hostname() } : { executor: 'local', host: os.hostname() };
}

export async function writeCellRecord(dir: string, record: Omit<CellRecord, 'executor' | 'job' | 'host' | 'finished'>): Promise<CellRecord> {
  const full: CellRecord = { ...record, ...currentExecutor(), finished: new Date().toISOString() };
  await writeFileAtomic(path.join(dir, CELL_RECORD), JSON.stringify(full, null, 1) + '\n');
  return full;
}
