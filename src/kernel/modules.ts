import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * How a cell's `import` and `require` find modules: `triplex` is the runtime bundled with the
 * extension (no install in the user's folder); anything else resolves from the notebook's folder
 * first (the user's own node_modules) and then from the extension's, so the packages that the
 * runtime works with (apache-arrow, @tensorflow/tfjs-core) can be imported too. ES modules that
 * `require` refuses are loaded with `import()`.
 */
export interface ModuleLoader {
  require(spec: string): unknown;
  importModule(spec: string): Promise<unknown>;
}

export function createModuleLoader(notebookDir: string, runtimeFile: string): ModuleLoader {
  const fromNotebook = createRequire(path.join(notebookDir, '__notebook__.js'));
  const fromExtension = createRequire(runtimeFile);
  let runtime: unknown;

  const resolve = (spec: string): { require: NodeJS.Require; file: string } => {
    try {
      return { require: fromNotebook, file: fromNotebook.resolve(spec) };
    } catch (err) {
      if (spec.startsWith('.') || path.isAbsolute(spec)) throw err;
      try {
        return { require: fromExtension, file: fromExtension.resolve(spec) };
      } catch {
        throw new Error(`Cannot find module '${spec}' from the notebook's folder ${notebookDir}. Install it there (npm install ${spec}), or import 'triplex' for the TRIPLEX runtime.`, { cause: err });
      }
    }
  };

  const requireModule = (spec: string): unknown => {
    if (spec === 'triplex') return (runtime ??= fromExtension(runtimeFile));
    const { require, file } = resolve(spec);
    return require(file);
  };

  return {
    require: requireModule,
    async importModule(spec) {
      try {
        return requireModule(spec);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw err;
        return import(pathToFileURL(resolve(spec).file).href) as Promise<unknown>;
      }
    },
  };
}

/** The default export as TypeScript's `esModuleInterop` sees it. */
export function defaultOf(module: unknown): unknown {
  const m = module as { __esModule?: boolean; default?: unknown } | null;
  if (!m || typeof m !== 'object') return module;
  const esm = Object.prototype.toString.call(m) === '[object Module]'; // a namespace from import()
  return m.__esModule || esm ? m.default : module;
}
