import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as readline from 'node:readline';
import type { TileAnswer } from '../runtime/image/tileServe';

/**
 * The slide viewer's on-demand tiles, on the extension's side: one long-lived `triplex tiles
 * --serve` child per section shown (started at the first request, the slide opened once), fed
 * at most `maxInFlight` tile names at a time. What the webview wants replaces what it wanted
 * before: tiles queued and no longer in view are dropped, never cut; tiles already being cut are
 * finished (they land on disk for later). No `vscode` here, so that tests drive it as the panel does.
 */

export interface TileCommand { file: string; args: string[]; env?: NodeJS.ProcessEnv }

export class SlideTileRequests {
  private child: ChildProcessWithoutNullStreams | undefined;
  private queue: string[] = [];
  private readonly inFlight = new Set<string>();
  /** Tiles answered (a file on disk or an error): a list the webview sent before it had the answer may name them again. */
  private readonly answered = new Set<string>();
  private stderr = '';
  private closed = false;
  /** Tiles handed to the cutter, in order; tiles dropped from the queue before that (stale). */
  readonly sent: string[] = [];
  dropped = 0;

  constructor(private readonly command: TileCommand, private readonly onAnswer: (a: TileAnswer) => void, readonly maxInFlight = 2) {}

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
    if (!this.closed) this.start();
  }

  /** Tiles being cut now. */
  get busy(): number {
    return this.inFlight.size;
  }

  /** Stops the cutter (a section switch, the panel closed); nothing more is answered. */
  close(): void {
    this.closed = true;
    this.queue = [];
    this.child?.stdin.end();
    this.child = undefined;
  }

  private pump(): void {
    while (this.inFlight.size < this.maxInFlight && this.queue.length) {
      const tile = this.queue.shift() as string;
      this.inFlight.add(tile);
      this.sent.push(tile);
      this.start().stdin.write(`${tile}\n`);
    }
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn(this.command.file, this.command.args, { env: this.command.env ?? process.env, stdio: 'pipe' });
    this.child = child;
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
      this.pump();
    });
    child.on('close', (code) => {
      if (this.child === child) this.child = undefined;
      const why = this.stderr.trim().split('\n').pop() || `it exited with code ${code}`;
      if (!this.closed) for (const tile of this.inFlight) this.onAnswer({ tile, error: `the tile cutter stopped: ${why}` });
      this.inFlight.clear();
    });
    return child;
  }
}
