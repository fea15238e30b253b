// Webview entry (browser bundle). The slide viewer and tables arrive with their issues.
export {};
