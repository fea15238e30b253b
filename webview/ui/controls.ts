// Our small UI layer over @vscode/webview-ui-toolkit (deprecated upstream since January 2025):
// pages build controls only through these functions, so replacing the toolkit touches this file.
import { provideVSCodeDesignSystem, vsCodeButton, vsCodeCheckbox, vsCodeDropdown, vsCodeOption, vsCodeTextField } from '@vscode/webview-ui-toolkit';

let registered = false;
function register(): void {
  if (registered) return;
  provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeCheckbox(), vsCodeDropdown(), vsCodeOption(), vsCodeTextField());
  registered = true;
}

export function button(label: string, onClick: () => void, options: { secondary?: boolean; id?: string } = {}): HTMLElement {
  register();
  const b = document.createElement('vscode-button');
  b.textContent = label;
  if (options.secondary) b.setAttribute('appearance', 'secondary');
  if (options.id) b.id = options.id;
  b.addEventListener('click', onClick);
  return b;
}

export function dropdown(options: { value: string; label: string }[], selected: string, onChange: (value: string) => void, id?: string): HTMLElement & { value: string } {
  register();
  const d = document.createElement('vscode-dropdown') as HTMLElement & { value: string };
  if (id) d.id = id;
  for (const o of options) {
    const opt = document.createElement('vscode-option') as HTMLElement & { value: string };
    opt.setAttribute('value', o.value);
    opt.textContent = o.label;
    if (o.value === selected) opt.setAttribute('selected', '');
    d.append(opt);
  }
  d.addEventListener('change', () => onChange(d.value));
  return d;
}

export function textField(placeholder: string, onInput: (value: string) => void, id?: string, label = placeholder): HTMLElement & { value: string } {
  register();
  const t = document.createElement('vscode-text-field') as HTMLElement & { value: string };
  t.setAttribute('placeholder', placeholder);
  // The toolkit names an empty field 'Text field' when it connects: name it after that, for screen readers.
  requestAnimationFrame(() => t.setAttribute('aria-label', label));
  if (id) t.id = id;
  t.addEventListener('input', () => onInput(t.value));
  return t;
}

export function checkbox(label: string, checked: boolean, onChange: (checked: boolean) => void, id?: string): HTMLElement {
  register();
  const c = document.createElement('vscode-checkbox') as HTMLElement & { checked: boolean };
  c.textContent = label;
  if (checked) c.setAttribute('checked', '');
  if (id) c.id = id;
  c.addEventListener('change', () => onChange(c.checked));
  return c;
}

export { el } from './dom';

/** The page's theme-following base styles. */
export function baseStyles(extra = ''): void {
  const style = document.createElement('style');
  style.textContent = `
body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); background: var(--vscode-editor-background); padding: 8px 16px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,0.35)); text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.best { font-weight: 700; color: var(--vscode-charts-green, inherit); }
tr.group td { font-weight: 600; opacity: 0.8; padding-top: 10px; border-bottom: none; }
tr.run { cursor: pointer; }
tr.run:hover, tr.run.selected { background: var(--vscode-list-hoverBackground); }
tr.run.selected { outline: 1px solid var(--vscode-focusBorder); }
.toolbar { display: flex; gap: 8px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
.muted { opacity: 0.75; }
.problem { color: var(--vscode-errorForeground); }
${extra}`;
  document.head.append(style);
}

/** A labelled range slider (the toolkit has none): a native input, so keyboards and screen readers work on it. */
export function slider(label: string, value: number, range: { min: number; max: number; step: number }, onInput: (value: number) => void, id?: string): HTMLElement {
  const wrap = document.createElement('label');
  wrap.className = 'slider';
  wrap.textContent = label;
  const input = document.createElement('input');
  input.type = 'range';
  input.min = String(range.min);
  input.max = String(range.max);
  input.step = String(range.step);
  input.value = String(value);
  input.setAttribute('aria-label', label);
  if (id) input.id = id;
  input.addEventListener('input', () => onInput(Number(input.value)));
  wrap.append(input);
  return wrap;
}
