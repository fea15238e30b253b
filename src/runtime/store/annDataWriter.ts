import type * as H5 from 'h5wasm';
import { loadH5wasm } from '../data/h5ad';

/**
 * Writes the AnnData on-disk format (anndata >= 0.8, the `encoding-type`/`encoding-version`
 * attributes that anndata's read_elem dispatches on) through h5wasm:
 *
 *   dict         group,   encoding-type dict 0.1.0
 *   array        dataset, encoding-type array 0.2.0 (numbers, any shape)
 *   string-array dataset, encoding-type string-array 0.2.0 (variable-length UTF-8)
 *   dataframe    group,   encoding-type dataframe 0.2.0 (0.1.0 with categorical columns, see
 *                dataframe()): attributes _index and column-order, one element per column
 *   numeric-scalar / string 0.2.0: 0-d datasets (uns values)
 *
 * Files are written with HDF5 library-version bounds (earliest, v110) so that HDF5 1.10 (the
 * h5py of Debian 12, older conda environments) reads them; h5wasm's default (its own 2.0) writes
 * object headers those cannot open.
 *
 * h5wasm cannot write HDF5 enum types, which h5py uses for numpy bool: flags are written as
 * uint8 0/1 (as Space Ranger's in_tissue).
 */

type H5Module = typeof H5;
export type NumericArray = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Int32Array | Uint32Array;

/** A dataframe column: numbers, text (one value per row), or a categorical of text (null: missing) or of numbers. */
export type FrameColumn =
  | { kind: 'numbers'; values: NumericArray }
  | { kind: 'text'; values: readonly string[] }
  | { kind: 'categorical'; values: ReadonlyArray<string | null> }
  | { kind: 'numberCategorical'; values: ArrayLike<number> };

/** h5wasm's dtype codes (Python struct letters: b/B 8-bit, h 16-bit, i/I 32-bit, f float32, d float64). */
const DTYPE = new Map<string, string>([
  ['Float32Array', '<f'], ['Float64Array', '<d'], ['Int8Array', '<b'], ['Uint8Array', '<B'],
  ['Int16Array', '<h'], ['Int32Array', '<i'], ['Uint32Array', '<I'],
]);

export class AnnDataWriter {
  private constructor(private readonly h5: H5Module, private readonly file: H5.File) {}

  /** Creates (truncates) `file` and marks its root as an AnnData object. */
  static async create(file: string): Promise<AnnDataWriter> {
    const h5 = await loadH5wasm();
    const handle = new h5.File(file, 'w', { libver: ['earliest', 'v110'] });
    if (handle.file_id < 0n) throw new Error(`${file}: the HDF5 library cannot create it`);
    const w = new AnnDataWriter(h5, handle);
    w.encode(handle, 'anndata', '0.1.0');
    return w;
  }

  close(): void {
    this.file.close();
  }

  /** The group at an absolute path ('/' for the root). */
  private group(p: string): H5.Group {
    const rel = p.replace(/^\/+/, '');
    if (rel === '') return this.file;
    const g = this.file.get(rel);
    if (!(g instanceof this.h5.Group)) throw new Error(`${this.file.filename}: ${p} is not a group`);
    return g;
  }

  private split(p: string): { parent: H5.Group; name: string } {
    const at = p.lastIndexOf('/');
    return { parent: this.group(p.slice(0, at) || '/'), name: p.slice(at + 1) };
  }

  private encode(e: H5.Group | H5.Dataset, type: string, version: string): void {
    e.create_attribute('encoding-type', type, null, 'S');
    e.create_attribute('encoding-version', version, null, 'S');
  }

  dict(p: string): void {
    const { parent, name } = this.split(p);
    this.encode(parent.create_group(name), 'dict', '0.1.0');
  }

  /** A numeric array of the given shape (row-major), e.g. [n, genes] or [h, w, 3]. */
  array(p: string, values: NumericArray, shape: number[] = [values.length]): void {
    const dtype = DTYPE.get(values.constructor.name);
    if (!dtype) throw new Error(`no HDF5 type for ${values.constructor.name}`);
    const { parent, name } = this.split(p);
    this.encode(parent.create_dataset({ name, data: values, shape, dtype }), 'array', '0.2.0');
  }

  strings(p: string, values: readonly string[]): void {
    const { parent, name } = this.split(p);
    this.encode(parent.create_dataset({ name, data: [...values], shape: [values.length], dtype: 'S' }), 'string-array', '0.2.0');
  }

  scalar(p: string, value: number): void {
    const { parent, name } = this.split(p);
    this.encode(parent.create_dataset({ name, data: new Float64Array([value]), shape: [], dtype: '<d' }), 'numeric-scalar', '0.2.0');
  }

  string(p: string, value: string): void {
    const { parent, name } = this.split(p);
    this.encode(parent.create_dataset({ name, data: value, shape: [], dtype: 'S' }), 'string', '0.2.0');
  }

  /**
   * A dataframe: the index (obs or var names) and its columns, in order. Without categorical
   * columns it is written as dataframe 0.2.0. With them, as dataframe 0.1.0 (anndata 0.7's
   * layout, which every anndata since reads): each categorical column is a dataset of codes
   * (-1: missing) whose attribute `categories` is an object reference to `__categories/<column>`.
   * The 0.2.0 categorical group needs a numpy-bool attribute `ordered` (an HDF5 enum), which
   * h5wasm cannot write; anndata 0.8 refuses an integer there.
   */
  dataframe(p: string, index: readonly string[], columns: ReadonlyArray<[string, FrameColumn]>): void {
    const categorical = columns.some(([, c]) => c.kind === 'categorical' || c.kind === 'numberCategorical');
    const { parent, name } = this.split(p);
    const g = parent.create_group(name);
    this.encode(g, 'dataframe', categorical ? '0.1.0' : '0.2.0');
    g.create_attribute('_index', '_index', null, 'S');
    // An empty list as h5py writes it (float64): h5wasm cannot write an empty string attribute cleanly.
    if (columns.length === 0) g.create_attribute('column-order', new Float64Array(0), [0], '<d');
    else g.create_attribute('column-order', columns.map(([c]) => c), [columns.length], 'S');
    this.strings(`${p}/_index`, index);
    if (categorical) g.create_group('__categories');
    for (const [column, c] of columns) {
      if (column === '_index' || column === '__categories') throw new Error(`a dataframe column cannot be named ${column}`);
      const q = `${p}/${column}`;
      if (c.kind === 'numbers') this.array(q, c.values);
      else if (c.kind === 'text') this.strings(q, c.values);
      else {
        let codes: Int32Array;
        if (c.kind === 'categorical') {
          const cats = [...new Set(c.values.filter((v): v is string => v !== null))];
          const at = new Map(cats.map((v, i) => [v, i]));
          codes = Int32Array.from(c.values, (v) => (v === null ? -1 : at.get(v)!));
          this.strings(`${p}/__categories/${column}`, cats);
        } else {
          const cats = [...new Set(Array.from(c.values))].sort((a, b) => a - b);
          const at = new Map(cats.map((v, i) => [v, i]));
          codes = Int32Array.from(c.values, (v) => at.get(v)!);
          this.array(`${p}/__categories/${column}`, Int32Array.from(cats));
        }
        this.array(q, codes);
        const cats = this.file.get(`${p}/__categories/${column}`.replace(/^\/+/, '')) as H5.Dataset;
        (this.file.get(q.replace(/^\/+/, '')) as H5.Dataset).create_attribute('categories', cats.create_reference());
      }
    }
  }
}
