import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gradients } from '../../src/runtime/engine/autodiff';
import { Graph } from '../../src/runtime/engine/graph';
import { createOrtExecutor, probeProvider } from '../../src/runtime/engine/ort';
import { TransformerBlock, ParamTable } from '../../src/runtime/engine/nn';
import { relativeError } from './helpers/compare';
import { mulberry32, normal } from '../../src/runtime/util/random';

/**
 * GPU execution providers: where one runs, the same graphs (a transformer block's forward and
 * every gradient) agree with the CPU provider; where none does, asking for one is a clear error
 * and auto falls back to the CPU, saying why. Which of the two a machine tests is printed.
 */
describe('onnxruntime execution providers', () => {
  for (const provider of ['webgpu', 'cuda'] as const) {
    test(`${provider}: the same graph as on the CPU, or a clear reason why it cannot run here`, async (t) => {
      const why = await probeProvider(provider);
      if (why) {
        t.diagnostic(`${provider} cannot run on this machine (${why}); the parity half of this test needs a GPU`);
        assert.match(why, new RegExp(`${provider}|provider library|no ${provider} provider`));
        const saved = process.env.TRIPLEX_PROVIDER;
        process.env.TRIPLEX_PROVIDER = provider;
        try {
          // A fresh module state: choice.ts caches its executor per process.
          const { selectEngine } = await import('../../src/runtime/engine/choice');
          await assert.rejects(selectEngine('ort'), new RegExp(`the ${provider} execution provider was asked for, but it cannot run here`));
        } finally {
          if (saved === undefined) delete process.env.TRIPLEX_PROVIDER;
          else process.env.TRIPLEX_PROVIDER = saved;
        }
        return;
      }
      const table = new ParamTable(3);
      const block = new TransformerBlock(table, 'b', { dim: 64, heads: 4, mlpRatio: 2, dropout: 0, relativePositionBias: true });
      const g = new Graph('float32');
      const x = g.input('x', [4, 25, 64]);
      const y = block.apply(g, x, 'inference', g.input('mask', [4, 25]));
      const loss = g.sum(g.square(y), [0, 1, 2]);
      const params = g.params();
      const grads = gradients(loss, [x, ...params.values()]);
      const outputs = { y, dx: grads[0], ...Object.fromEntries([...params.keys()].map((n, i) => [`d:${n}`, grads[i + 1]])) };
      const random = mulberry32(1);
      const feeds = {
        x: normal(random, 4 * 25 * 64), mask: Float32Array.from({ length: 100 }, (_, i) => (i % 25 === 12 || random() > 0.3 ? 1 : 0)),
        ...Object.fromEntries([...table.initialValues()].map(([n, v]) => [`param:${n}`, v])),
      };
      const results = [];
      for (const p of ['cpu', provider] as const) {
        const e = await createOrtExecutor({ threads: 1, provider: p });
        if ('unavailable' in e) throw new Error(e.unavailable);
        const program = await e.compile(outputs);
        results.push(await program.run(feeds));
        await program.dispose();
      }
      for (const k of Object.keys(outputs)) {
        const err = relativeError(results[1][k] as Float32Array, results[0][k] as Float32Array);
        assert.ok(err < 1e-4, `${provider}: ${k} differs from the CPU provider by ${err}`);
      }
      t.diagnostic(`${provider}: ${Object.keys(outputs).length} tensors agree with the CPU provider within 1e-4`);
    });
  }
});
