import type { Browser, Page } from 'playwright-core';
import type { ViewerInbound, ViewerSavedState } from '../../../src/protocol/webviews';
import { THEMES } from './browser';

/**
 * The slide viewer's bundle in a page of headless Chromium, with `acquireVsCodeApi` standing in
 * for VS Code's: messages in through window.postMessage, messages out recorded, and setState /
 * getState kept in the page (a reload is a new page handed the old page's state).
 */
export class ViewerPage {
  private constructor(readonly page: Page) {}

  /** `toHost`, when given, receives every message the page sends as it is sent (the extension's side of a test). */
  static async open(browser: Browser, base: string, theme: keyof typeof THEMES, state?: unknown, toHost?: (message: unknown) => void): Promise<ViewerPage> {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    if (toHost) await page.exposeFunction('__toHost', toHost);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(base);
    await page.evaluate(([vars, saved]) => {
      for (const [k, v] of Object.entries(vars as Record<string, string>)) document.documentElement.style.setProperty(k, v);
      const sent: unknown[] = [];
      const w = window as unknown as { __sent: unknown[]; __state: unknown; __toHost?: (m: unknown) => void };
      w.__sent = sent;
      w.__state = saved;
      Object.assign(window, { acquireVsCodeApi: () => ({ postMessage: (m: unknown) => { sent.push(m); void w.__toHost?.(m); }, getState: () => w.__state, setState: (s: unknown) => { w.__state = JSON.parse(JSON.stringify(s)); } }) });
    }, [THEMES[theme], state ?? null] as const);
    await page.addScriptTag({ url: `${base}/viewer.js` });
    if (errors.length) throw new Error(`the viewer failed to load: ${errors.join('; ')}`);
    return new ViewerPage(page);
  }

  sent(): Promise<{ type: string; payload: unknown }[]> {
    return this.page.evaluate(() => (window as unknown as { __sent: { type: string; payload: unknown }[] }).__sent);
  }

  async sentOf<T>(type: string): Promise<T[]> {
    return (await this.sent()).filter((m) => m.type === type).map((m) => m.payload as T);
  }

  saved(): Promise<ViewerSavedState> {
    return this.page.evaluate(() => (window as unknown as { __state: ViewerSavedState }).__state);
  }

  deliver<K extends keyof ViewerInbound>(type: K, payload: ViewerInbound[K]): Promise<void> {
    return this.page.evaluate((m) => window.postMessage(m, '*'), { type, payload });
  }

  /** Waits for the viewer to report drawing `gene` (the n-th time). */
  async rendered(gene: string, times = 1): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if ((await this.sentOf<{ gene: string }>('rendered')).filter((m) => m.gene === gene).length >= times) return;
      await this.page.waitForTimeout(25);
    }
    throw new Error(`the viewer did not report drawing ${gene}`);
  }

  /** Two animation frames: whatever a change scheduled has been drawn. */
  frames(): Promise<void> {
    return this.page.evaluate(() => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))));
  }

  /** Sets a control's value as a user would (a dropdown or a slider) and lets the page draw. */
  async setControl(id: string, value: string): Promise<void> {
    await this.page.evaluate(([i, v]) => {
      const c = document.getElementById(i) as HTMLInputElement;
      c.value = v;
      c.dispatchEvent(new Event(c.tagName === 'INPUT' ? 'input' : 'change'));
    }, [id, value] as const);
    await this.frames();
  }

  /**
   * The RGBA drawn in panel `panel` at image point (x, y) plus a screen offset, under the view
   * the page last saved (the view every panel shares).
   */
  async rgbaAt(panel: number, x: number, y: number, dx = 0, dy = 0): Promise<number[]> {
    const view = (await this.saved()).view;
    if (!view) throw new Error('no view saved yet');
    return this.page.locator('canvas.slide').nth(panel).evaluate((c: HTMLCanvasElement, [sx, sy]) => {
      const dpr = c.width / c.getBoundingClientRect().width;
      const d = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(Math.round(sx * dpr), Math.round(sy * dpr), 1, 1).data;
      return [d[0], d[1], d[2], d[3]];
    }, [x * view.scale + view.tx + dx, y * view.scale + view.ty + dy] as const);
  }

  close(): Promise<void> {
    return this.page.close();
  }
}

/** `rgb(r,g,b)` (a colour map's entry) as numbers. */
export const rgbOf = (css: string) => (/rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(css) as RegExpExecArray).slice(1).map(Number);
/** Colours equal within JPEG and blending noise. */
export const near = (a: number[], b: number[], tolerance = 3) => b.every((v, k) => Math.abs(a[k] - v) <= tolerance);
