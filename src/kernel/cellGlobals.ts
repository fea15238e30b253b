/** What the kernel gives every cell besides its own names (one definition for the kernel and the checks of the sample notebooks). */
export interface NotebookGlobals {
  /** Aborted when the stop button is pressed; pass it to long runs (`crossValidate`, `extractFeatures`). */
  readonly signal: AbortSignal;
  /** The notebook's folder (the kernel's working directory). */
  readonly dir: string;
  display(...values: unknown[]): void;
  /** Throws if the stop button was pressed; call it in long loops that take no signal. */
  checkInterrupted(): void;
}

export interface CellGlobals {
  notebook: NotebookGlobals;
  display: NotebookGlobals['display'];
  require: (spec: string) => unknown;
}
