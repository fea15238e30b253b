import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { mulberry32 } from '../util/random';

/**
 * The embedded default dataset: seeded, synthetic, written in the published HER2+ layout so that
 * the same reader reads it. Each section is an H&E-like image (pink stroma, purple tumour nests,
 * dark lymphocyte aggregates) with spots on an ST-like grid, and counts whose genes depend on
 *   - the spot's own appearance (tumour and immune fractions inside its 224 px crop): target genes;
 *   - its neighbourhood (tumour fraction within about 1 mm: the 1120 px neighbour view): niche genes;
 *   - a slide-level state (the tumour burden of the whole section, invisible in any one crop):
 *     slide genes;
 *   - combinations of these, plus housekeeping and noise genes,
 * so that target-only, neighbour-only, global-only and fused models can be told apart.
 * Spot spacing equals the crop size (224 px), so neighbour tiles coincide with grid cells.
 */

export interface SynthOptions {
  seed?: number;
  patients?: number;
  sectionsPerPatient?: number;
  /** Spots per side of the square array (spots outside the tissue are dropped). */
  gridSize?: number;
  /** Genes written to the count files (some fail the 10% rule, as in real data). */
  genes?: number;
}

export interface SynthSummary {
  root: string;
  sections: { id: string; patient: string; spots: number; image: string; slideState: number }[];
  genes: number;
}

const SPACING = 224;
const MARGIN = 336;
type Tissue = 0 | 1 | 2; // stroma, tumour, immune
const TISSUE_NAMES = ['connective tissue', 'invasive cancer', 'immune infiltrate'] as const;

/** Tissue type per 16-px block from a few random blobs; `burden` scales the tumour area. */
function tissueMap(rand: () => number, blocks: number, burden: number): Uint8Array {
  const map = new Uint8Array(blocks * blocks);
  const blob = (r0: number, r1: number) => ({ cy: rand() * blocks, cx: rand() * blocks, r: r0 + rand() * (r1 - r0) });
  // Many nests of about a crop's size (radius 100-340 px at the default grid), so that a spot's own
  // crop and its 1120 px neighbourhood hold different tumour fractions: target and niche genes
  // then carry information the other view lacks, which only a fused model has all of.
  const tumours = Array.from({ length: 2 + Math.round(burden * 14) }, () => blob(blocks * 0.03, blocks * (0.05 + 0.05 * burden)));
  const immune = Array.from({ length: 3 }, () => blob(blocks * 0.04, blocks * 0.08));
  for (let by = 0; by < blocks; by++) {
    for (let bx = 0; bx < blocks; bx++) {
      const inside = (b: { cy: number; cx: number; r: number }) => {
        const wobble = 1 + 0.15 * Math.sin(bx * 0.7 + b.cx) * Math.cos(by * 0.6 + b.cy);
        return (by - b.cy) ** 2 + (bx - b.cx) ** 2 < (b.r * wobble) ** 2;
      };
      map[by * blocks + bx] = immune.some(inside) ? 2 : tumours.some(inside) ? 1 : 0;
    }
  }
  return map;
}

/** Renders the H&E-like RGB image of a tissue map. */
function render(rand: () => number, map: Uint8Array, blocks: number, size: number): Uint8Array {
  const rgb = new Uint8Array(size * size * 3);
  const block = size / blocks;
  const tissueAt = (x: number, y: number): Tissue => map[Math.min(blocks - 1, Math.floor(y / block)) * blocks + Math.min(blocks - 1, Math.floor(x / block))] as Tissue;
  // background: eosin pink, paler in stroma, deeper in tumour
  const base: [number, number, number][] = [[236, 178, 205], [214, 150, 190], [226, 170, 200]];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const t = tissueAt(x, y);
      const n = (rand() - 0.5) * 16;
      const o = (y * size + x) * 3;
      rgb[o] = base[t][0] + n;
      rgb[o + 1] = base[t][1] + n;
      rgb[o + 2] = base[t][2] + n;
    }
  }
  // nuclei: tumour large and crowded, immune small and dark, stroma sparse and elongated
  const shapes = [
    { perPx: 1 / 2200, ry: [2, 3], rx: [5, 9], colour: [120, 70, 150] },
    { perPx: 1 / 260, ry: [5, 8], rx: [5, 8], colour: [88, 46, 132] },
    { perPx: 1 / 120, ry: [3, 4], rx: [3, 4], colour: [60, 30, 100] },
  ] as const;
  const attempts = size * size / 120;
  for (let i = 0; i < attempts; i++) {
    const cx = rand() * size;
    const cy = rand() * size;
    const s = shapes[tissueAt(cx, cy)];
    if (rand() > s.perPx * 120) continue;
    const ry = s.ry[0] + rand() * (s.ry[1] - s.ry[0]);
    const rx = s.rx[0] + rand() * (s.rx[1] - s.rx[0]);
    const angle = rand() * Math.PI;
    const [ca, sa] = [Math.cos(angle), Math.sin(angle)];
    const r = Math.max(rx, ry);
    for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(size, Math.ceil(cy + r)); y++) {
      for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(size, Math.ceil(cx + r)); x++) {
        const u = (x - cx) * ca + (y - cy) * sa;
        const v = -(x - cx) * sa + (y - cy) * ca;
        if ((u / rx) ** 2 + (v / ry) ** 2 > 1) continue;
        const o = (y * size + x) * 3;
        const shade = (rand() - 0.5) * 20;
        rgb[o] = s.colour[0] + shade;
        rgb[o + 1] = s.colour[1] + shade;
        rgb[o + 2] = s.colour[2] + shade;
      }
    }
  }
  return rgb;
}

/** Fraction of each tissue type inside the square [x0, x0 + w) x [y0, y0 + w) (clipped to the image). */
function composition(map: Uint8Array, blocks: number, size: number, x0: number, y0: number, w: number): [number, number, number] {
  const block = size / blocks;
  const counts = [0, 0, 0];
  let n = 0;
  for (let by = Math.max(0, Math.floor(y0 / block)); by < Math.min(blocks, Math.ceil((y0 + w) / block)); by++) {
    for (let bx = Math.max(0, Math.floor(x0 / block)); bx < Math.min(blocks, Math.ceil((x0 + w) / block)); bx++) {
      counts[map[by * blocks + bx]]++;
      n++;
    }
  }
  return n ? [counts[0] / n, counts[1] / n, counts[2] / n] : [1, 0, 0];
}

interface GeneModel { name: string; base: number; own: [number, number]; niche: number; slide: number; interaction: number }

/** Genes with distinct dependence patterns (log-rate coefficients), seeded. */
function geneModels(rand: () => number, n: number): GeneModel[] {
  const kinds = ['TGT', 'NCH', 'SLD', 'MIX', 'HK', 'NOISE'] as const;
  return Array.from({ length: n }, (_, i) => {
    const kind = kinds[i % kinds.length];
    const c = () => 0.8 + rand() * 1.6;
    const sign = () => (rand() < 0.7 ? 1 : -1);
    const base = kind === 'NOISE' ? -3 - rand() * 3 : -0.5 - rand() * 3.5;
    return {
      name: `${kind}${String(Math.floor(i / kinds.length) + 1).padStart(3, '0')}`,
      base,
      own: kind === 'TGT' || kind === 'MIX' ? [sign() * c(), sign() * c()] : [0, 0],
      niche: kind === 'NCH' || kind === 'MIX' ? sign() * c() : 0,
      slide: kind === 'SLD' || kind === 'MIX' ? sign() * c() : 0,
      interaction: kind === 'MIX' ? sign() * c() : 0,
    };
  });
}

function poisson(rand: () => number, lambda: number): number {
  if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * gaussian(rand)));
  const l = Math.exp(-lambda);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= rand();
  } while (p > l);
  return k - 1;
}

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** RGB bytes to a JPEG file (quality 90, as scanners export). */
async function writeJpeg(file: string, rgb: Uint8Array, width: number, height: number): Promise<void> {
  await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 }, limitInputPixels: false }).jpeg({ quality: 90 }).toFile(file);
}

/**
 * Writes the synthetic dataset into `root` in the HER2+ layout (ST-cnts, ST-spotfiles, ST-imgs,
 * ST-pat/lbl), and a README saying how it was made.
 */
export async function writeSyntheticDataset(root: string, options: SynthOptions = {}): Promise<SynthSummary> {
  const readme = path.join(root, 'README.md');
  if (fs.existsSync(root) && fs.readdirSync(root).length > 0
    && !(fs.existsSync(readme) && fs.readFileSync(readme, 'utf8').startsWith(SYNTH_README_TITLE))) {
    throw new Error(`${root} exists and holds something else than a synthetic dataset; choose an empty or new folder`);
  }
  // Written beside the target and renamed at the end: an interrupted run leaves no half dataset.
  const partial = `${root}.partial-${process.pid}`;
  fs.rmSync(partial, { recursive: true, force: true });
  try {
    const summary = await writeInto(partial, options);
    fs.rmSync(root, { recursive: true, force: true });
    fs.renameSync(partial, root);
    return { ...summary, root, sections: summary.sections.map((s) => ({ ...s, image: path.join(root, path.relative(partial, s.image)) })) };
  } catch (e) {
    fs.rmSync(partial, { recursive: true, force: true });
    throw e;
  }
}

const SYNTH_README_TITLE = '# TRIPLEX synthetic dataset';
/** Bumped whenever the generator's output changes (2: tumour nests of about a crop's size). */
const SYNTH_VERSION = 2;
const versionLine = `Generator version ${SYNTH_VERSION}.`;

/** Whether `root` holds a synthetic dataset written by this version of the generator (else it is regenerated). */
export function isCurrentSyntheticDataset(root: string): boolean {
  const readme = path.join(root, 'README.md');
  return fs.existsSync(readme) && fs.readFileSync(readme, 'utf8').split('\n').includes(versionLine);
}

async function writeInto(root: string, options: SynthOptions): Promise<SynthSummary> {
  const seed = options.seed ?? 2024;
  const patients = options.patients ?? 4;
  const perPatient = options.sectionsPerPatient ?? 2;
  const grid = options.gridSize ?? 12;
  const rand = mulberry32(seed);
  const genes = geneModels(rand, options.genes ?? 300);
  const size = grid * SPACING + 2 * MARGIN;
  const blocks = size / 16;
  const summary: SynthSummary = { root, sections: [], genes: genes.length };
  for (const dir of ['ST-cnts', 'ST-spotfiles', 'ST-imgs', path.join('ST-pat', 'lbl')]) fs.mkdirSync(path.join(root, dir), { recursive: true });

  for (let p = 0; p < patients; p++) {
    const patient = String.fromCharCode(65 + p);
    const patientEffect = (rand() - 0.5) * 0.6; // batch effect shared by a patient's sections
    for (let k = 1; k <= perPatient; k++) {
      const id = `${patient}${k}`;
      const burden = rand(); // slide-level state: the section's tumour burden
      const map = tissueMap(rand, blocks, burden);
      const rgb = render(rand, map, blocks, size);
      const slideState = composition(map, blocks, size, 0, 0, size)[1];
      const spotLines = ['x\ty\tnew_x\tnew_y\tpixel_x\tpixel_y\tselected'];
      const labelLines = ['Row.names\tx\ty\tpixel_x\tpixel_y\tlabel'];
      const countLines = ['\t' + genes.map((g) => g.name).join('\t')];
      const centre = (grid - 1) / 2;
      for (let row = 0; row < grid; row++) {
        for (let col = 0; col < grid; col++) {
          // a roughly round section: corners of the array have no tissue
          if ((row - centre) ** 2 + (col - centre) ** 2 > (grid / 2 + 0.3) ** 2) continue;
          // Centres exactly on the grid: neighbour tiles of adjacent spots coincide and are encoded once.
          const px = MARGIN + col * SPACING + SPACING / 2;
          const py = MARGIN + row * SPACING + SPACING / 2;
          const own = composition(map, blocks, size, px - 112, py - 112, 224);
          const niche = composition(map, blocks, size, px - 560, py - 560, 1120);
          const library = Math.exp(7 + 0.3 * gaussian(rand));
          const counts = genes.map((g) => {
            const logRate = g.base + patientEffect * 0.3 + g.own[0] * own[1] + g.own[1] * own[2] + g.niche * niche[1]
              + g.slide * slideState + g.interaction * own[1] * slideState;
            return poisson(rand, library * Math.exp(logRate) / 60);
          });
          const x = col + 1;
          const y = row + 1;
          spotLines.push(`${x}\t${y}\t${(x + (rand() - 0.5) * 0.05).toFixed(3)}\t${(y + (rand() - 0.5) * 0.05).toFixed(3)}\t${px.toFixed(2)}\t${py.toFixed(2)}\t1`);
          const dominant = own.indexOf(Math.max(...own));
          labelLines.push(`${Math.round(px)}x${Math.round(py)}\t${x}\t${y}\t${px.toFixed(2)}\t${py.toFixed(2)}\t${TISSUE_NAMES[dominant]}`);
          countLines.push(`${x}x${y}\t${counts.join('\t')}`);
        }
      }
      const imageDir = path.join(root, 'ST-imgs', patient, id);
      fs.mkdirSync(imageDir, { recursive: true });
      const image = path.join(imageDir, `synthetic_HE_${id}.jpg`);
      await writeJpeg(image, rgb, size, size);
      fs.writeFileSync(path.join(root, 'ST-spotfiles', `${id}_selection.tsv`), spotLines.join('\n') + '\n');
      fs.writeFileSync(path.join(root, 'ST-pat', 'lbl', `${id}_labeled_coordinates.tsv`), labelLines.join('\n') + '\n');
      fs.writeFileSync(path.join(root, 'ST-cnts', `${id}.tsv.gz`), zlib.gzipSync(countLines.join('\n') + '\n'));
      summary.sections.push({ id, patient, spots: spotLines.length - 1, image, slideState });
    }
  }
  fs.writeFileSync(path.join(root, 'README.md'), [
    SYNTH_README_TITLE,
    '',
    `Generated by \`triplex synth\` (seed ${seed}): ${patients} patients x ${perPatient} sections, ${grid}x${grid} array, ${genes.length} genes.`,
    'Layout as the published HER2+ data (ST-cnts, ST-spotfiles, ST-imgs, ST-pat/lbl). Gene name prefixes say what drives them:',
    'TGT the spot\'s own crop, NCH its ~1 mm neighbourhood, SLD the section\'s tumour burden, MIX all three, HK housekeeping, NOISE sparse.',
    '',
    versionLine,
    '',
  ].join('\n'));
  return summary;
}
