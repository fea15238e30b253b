"""PyTorch peer of `npm run bench`'s baselines part: one published baseline (ST-Net, HisToGene,
Hist2ST, EGN or BLEEP) in the configuration bench/baselines.bench.ts measures on the engine, the
models being those of the parity tests' references (scripts/fixtures/torch_<model>_reference.py,
imported, not copied), run in float32.

Usage: /usr/bin/python3 bench/torch_baselines.py '<json>'
  json: {"model", "config" (the preset, as the TypeScript model takes it), "genes", "featureDim",
         "trainSpots", "inferSpots", "iterations", "threads"}
Training: train mode (dropout, batch statistics), the model's own loss, backward, Adam (lr 1e-4),
on trainSpots spots (a spot model's batch; a section model's one section). Inference: eval mode,
no grad, the engine's predict graph (ST-Net and EGN: the clamped output; HisToGene and Hist2ST:
the gene head; BLEEP: the projected image embedding), on inferSpots spots. Inputs are made once
and fed to every step, as on the engine (crops NHWC 0..255; Hist2ST's augmented copies too).
One warm-up step, then `iterations` timed ones. Prints one JSON line: spots/s (mean, best) of both,
threads, the BLAS found loaded, peak RSS (one process per model, so it is the model's).
"""
import json, os, resource, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "fixtures"))
import torch
import torch.nn as nn
import torch.nn.functional as F

spec = json.loads(sys.argv[1])
name, c = spec["model"], spec["config"]
G, D = spec["genes"], spec["featureDim"]
n_train, n_infer, iters = spec["trainSpots"], spec["inferSpots"], spec["iterations"]

if name == "stnet":
    import torch_stnet_reference as ref
elif name == "histogene":
    import torch_histogene_reference as ref
elif name == "hist2st":
    import torch_hist2st_reference as ref
elif name == "egn":
    import torch_egn_reference as ref
elif name == "bleep":
    import torch_bleep_reference as ref
else:
    raise SystemExit(f"unknown model {name}")

torch.set_default_dtype(torch.float32)  # the references compute in float64
for constant in ("MEAN", "STD"):  # ImageNet statistics, made float64 at import
    if hasattr(ref, constant):
        setattr(ref, constant, getattr(ref, constant).float())
torch.set_num_threads(spec["threads"])
torch.manual_seed(0)


def crops(n, S):
    return torch.randint(0, 256, (n, S, S, 3)).float()


def grid(n, width=16):
    """Array positions of a section: n spots filling rows of `width` (a 128-spot section is 8 x 16)."""
    i = torch.arange(n)
    return i // width, i % width


if name == "stnet":
    net = ref.StNet(c["growthRate"], tuple(c["blockConfig"]), c["initFeatures"], c["bnSize"], G)
    x, y, xi = crops(n_train, c["cropSize"]), torch.randn(n_train, G), crops(n_infer, c["cropSize"])
    loss = lambda: F.mse_loss(net(x), y)
    infer = lambda: torch.clamp(net(xi), 0)
elif name == "histogene":
    net = ref.HisToGene(c, G)

    def section(n):
        rows, cols = grid(n)
        return crops(n, c["cropSize"]), torch.stack([cols, rows], 1)[None]  # the original's centres: (array x, array y)

    def forward(x, centers):
        n = x.shape[0]
        return net(x.permute(0, 2, 1, 3).reshape(1, n, -1), centers)[0]  # the original's (x, y, channel) patches

    (x, centers), y = section(n_train), torch.randn(n_train, G)
    xi, centers_i = (x, centers) if n_infer == n_train else section(n_infer)
    loss = lambda: F.mse_loss(forward(x, centers), y)
    infer = lambda: forward(xi, centers_i)
elif name == "hist2st":
    class Hist2STDropout(ref.Hist2ST):
        """The reference with its dropout rates at the configuration's (the parity test runs them at 0),
        the patch embedding's dropout included (ViT.dropout of the original)."""

        def __init__(self, c, genes):
            super().__init__(c, genes)
            self.embed_dropout = nn.Dropout(c["dropout"])
            for m in self.modules():
                if isinstance(m, nn.Dropout):
                    m.p = c["dropout"]

        def encode(self, crops, rows, cols, adj):
            x = self.embed_dropout(self.patch_embedding(crops.permute(0, 3, 1, 2)))
            return self.vit.transformer(x, self.x_embed(cols) + self.y_embed(rows), adj)

    net = Hist2STDropout(c, G)
    assert n_infer == n_train, "one section for both"
    rows, cols = grid(n_train)
    adj = ref.adjacency(rows.tolist(), cols.tolist())
    S, A = c["cropSize"], c["augmentations"]
    x, augmented = crops(n_train, S), crops(A * n_train, S).reshape(A, n_train, S, S, 3)
    counts = torch.randint(0, 9, (n_train, G)).float() * (torch.rand(n_train, G) > 0.4)
    total = counts.sum(1)
    sf = (total / total.median()).clamp_min(0.05)[:, None]
    y = torch.randn(n_train, G)
    loss = lambda: ref.training_loss(net, c, x, augmented, rows, cols, adj, counts, sf, y)[-1]
    infer = lambda: net.gene_head(net.encode(x, rows, cols, adj))
elif name == "egn":
    net = ref.EGN(c, G, D)
    K, S = c["exemplars"], c["cropSize"]

    def batch(n):
        return crops(n, S), torch.randn(n, D), torch.randn(n, K, D), torch.rand(n, K, G) * 3

    train_in, y, infer_in = batch(n_train), torch.rand(n_train, G) * 3, batch(n_infer)
    loss = lambda: ref.egn_loss(net(*train_in), y)
    infer = lambda: net(*infer_in).clamp(min=0)
else:  # bleep
    net = ref.Bleep(G, c["projectionDim"], c["dropout"], c["temperature"])
    x, y, xi = crops(n_train, c["cropSize"]), torch.rand(n_train, G) * 3, crops(n_infer, c["cropSize"])
    loss = lambda: net.loss(x, y)
    infer = lambda: net.images(xi)

net = net.float()
opt = torch.optim.Adam(net.parameters(), lr=1e-4)


def train_step():
    opt.zero_grad()
    loss().backward()
    opt.step()


def infer_step():
    with torch.no_grad():
        infer()


def timed(step, spots):
    step()  # warm-up
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return spots / (sum(times) / len(times)), spots / min(times)


net.train()
train, train_best = timed(train_step, n_train)
net.eval()
inference, inference_best = timed(infer_step, n_infer)
with open("/proc/self/maps") as f:
    maps = f.read()
print(json.dumps({"model": name, "train": train, "trainBest": train_best, "inference": inference, "inferenceBest": inference_best,
                  "parameters": sum(p.numel() for p in net.parameters()), "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "blas": "openblas" if "openblas" in maps else "mkl" if "libmkl" in maps else "reference",
                  "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
