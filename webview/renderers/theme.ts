// Colours come from VS Code's theme variables, so outputs follow light, dark and high-contrast themes.
const STYLE_ID = 'triplex-renderer-style';

export function ensureStyles(): void {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement('style');
  style.id = STYLE_ID;
  style.textContent = `
.triplex-output { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size, 13px); color: var(--vscode-foreground); }
.triplex-output .title { font-weight: 600; margin: 4px 0; }
.triplex-output table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.triplex-output th, .triplex-output td { padding: 2px 8px; border-bottom: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,0.35)); text-align: left; white-space: nowrap; }
.triplex-output td.num, .triplex-output th.num { text-align: right; }
.triplex-output th { position: sticky; top: 0; background: var(--vscode-editor-background); }
.triplex-output th .type { display: block; font-weight: normal; opacity: 0.7; font-size: 0.85em; }
.triplex-output td.best { font-weight: 700; color: var(--vscode-charts-green, inherit); }
.triplex-output .scroll { max-height: 420px; overflow: auto; }
.triplex-output .pager { display: flex; gap: 8px; align-items: center; margin-top: 4px; }
.triplex-output button { background: var(--vscode-button-secondaryBackground, var(--vscode-button-background)); color: var(--vscode-button-secondaryForeground, var(--vscode-button-foreground));
  border: 1px solid var(--vscode-button-border, transparent); padding: 2px 10px; cursor: pointer; }
.triplex-output button:disabled { opacity: 0.5; cursor: default; }
.triplex-output .plot { width: 100%; }
`;
  document.head.append(style);
}

/** A theme colour for plotly, which takes colours, not CSS variables. */
export function themeColor(variable: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(variable).trim() || fallback;
}
