import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as readline from 'node:readline';
import type { TileAnswer } from '../runtime/image/tileServe';

/**
 * The slide viewer's on-demand tiles, on the extension's side: one `triplex tiles --serve` child
 * per section shown (the slide opened once), fed at most `maxInFlight` tile names at a time. What
 * the webview wants replaces what it wanted before: tiles queued and no longer in view are
 * dropped, never cut; tiles already being cut are finished (they land on disk for later).
 * The child is started by `warm` or the first request, ended after `idleMs` without a tile to cut
 * (started again by the next request) and by `close`. No `vscode` here, so that tests drive it as
 * the panel does.
 */

export interface TileCommand { file: string; args: string[]; env?: NodeJS.ProcessEnv }

/** How long a serving child with nothing to cut lives on (it holds the slide open and its tile cache). */
export const TILE_SERVER_IDLE_MS = 60_000;
/** After `close`, how long a child may take to finish the tile it is cutting before it is killed. */
const CLOSE_GRACE_MS = 5_000;

export class SlideTileRequests {
  private child: ChildProcessWithoutNullStreams | undefined;
  private queue: string[] = [];
  private readonly inFlight = new Set<string>();
  /** Tiles answered (a file on disk or an error): a list the webview sent before it had the answer may name them again. */
  private readonly answered = new Set<string>();
  private stderr = '';
  private closed = false;
  private idle: NodeJS.Timeout | undefined;
  /** Tiles handed to the cutter, in order; tiles dropped from the queue before that (stale). */
  readonly sent: string[] = [];
  dropped = 0;
  /** Children started, and those ended for want of requests (idle). */
  started = 0;
  idleStops = 0;

  constructor(private readonly command: TileCommand, private readonly onAnswer: (a: TileAnswer) => void, readonly maxInFlight = 2, readonly idleMs = TILE_SERVER_IDLE_MS) {}

  /** The tiles the view needs now, most wanted first (it replaces the previous list). */
  want(tiles: readonly string[]): void {
    if (this.closed) return;
    const next = [...new Set(tiles)].filter((t) => !this.inFlight.has(t) && !this.answered.has(t));
    const kept = new Set(next);
    this.dropped += this.queue.filter((t) => !kept.has(t)).length;
    this.queue = next;
    this.pump();
  }

  /** Starts the child now (when the viewer opens a whole slide), so that the first zoom does not wait for it. */
  warm(): void {
    if (this.closed) return;
    this.start();
    this.pump();
  }

  /** Tiles being cut now. */
  get busy(): number {
    return this.inFlight.size;
  }

  /** The serving child's process id while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stops the cutter (a section switch, the panel closed); nothing more is answered. */
  close(): void {
    this.closed = true;
    this.queue = [];
    this.stop();
  }

  private pump(): void {
    while (this.inFlight.size < this.maxInFlight && this.queue.length) {
      const tile = this.queue.shift() as string;
      this.inFlight.add(tile);
      this.sent.push(tile);
      this.start().stdin.write(`${tile}\n`);
    }
    clearTimeout(this.idle);
    this.idle = undefined;
    if (this.child && this.inFlight.size === 0) {
      this.idle = setTimeout(() => {
        this.idleStops++;
        this.stop();
      }, this.idleMs);
      this.idle.unref();
    }
  }

  /** Ends the child's input (it exits once its tiles in hand are written), killing it if it lingers. */
  private stop(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.stdin.end();
    const kill = setTimeout(() => child.kill(), CLOSE_GRACE_MS);
    kill.unref();
    child.once('close', () => clearTimeout(kill));
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn(this.command.file, this.command.args, { env: this.command.env ?? process.env, stdio: 'pipe' });
    this.child = child;
    this.started++;
    this.stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { this.stderr = (this.stderr + d).slice(-2000); });
    child.stdin.on('error', () => undefined); // a child that died is reported by 'close'
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let a: TileAnswer;
      try {
        a = JSON.parse(line) as TileAnswer;
      } catch {
        return;
      }
      this.inFlight.delete(a.tile);
      this.answered.add(a.tile);
      if (!this.closed) this.onAnswer(a);
      if (!this.closed) this.pump();
    });
    child.on('close', (code) => {
      // A child stopped (idle, closed) had nothing in flight; one that died with tiles in hand answers them with why.
      if (this.child !== child) return;
      this.child = undefined;
      clearTimeout(this.idle);
      const why = this.stderr.trim().split('\n').pop() || `it exited with code ${code}`;
      if (!this.closed) for (const tile of this.inFlight) this.onAnswer({ tile, error: `the tile cutter stopped: ${why}` });
      this.inFlight.clear();
    });
    return child;
  }
}
