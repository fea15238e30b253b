"""PyTorch peer of the engine bench: the BC1 neighbor encoder (4 pre-norm blocks, d 512, 4 heads,
mlp ratio 4, dropout 0.3, relative-position bias, masked keys, final LayerNorm), the mean of its 25
tokens through Linear(512, 250), MSE against a target; Adam lr 1e-4. The blocks are those of
scripts/fixtures/torch_triplex_reference.py, in float32.

Usage: /usr/bin/python3 bench/torch_engine.py <batch> <iters> <threads>
Prints one JSON line: training and inference spots/s (mean over the timed repetitions, best), BLAS.
"""
import json, os, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "fixtures"))
import torch
from torch_triplex_reference import NeighborEncoder

torch.set_default_dtype(torch.float32)  # the reference module sets float64 at import
batch, iters, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
d, genes = 512, 250
encoder = NeighborEncoder(d, {"depth": 4, "heads": 4, "mlpRatio": 4, "dropout": 0.3})
head = torch.nn.Linear(d, genes)
params = list(encoder.parameters()) + list(head.parameters())
opt = torch.optim.Adam(params, lr=1e-4)
x = torch.randn(batch, 25, d)
mask = (torch.rand(batch, 25) > 0.2).float()
mask[:, 12] = 1.0
y = torch.randn(batch, genes)


def train():
    opt.zero_grad()
    out = head(encoder(x, mask).mean(1))
    torch.nn.functional.mse_loss(out, y).backward()
    opt.step()


def infer():
    with torch.no_grad():
        head(encoder(x, mask).mean(1))


def timed(step):
    step()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return batch / (sum(times) / len(times)), batch / min(times)


encoder.train()
train_mean, train_best = timed(train)
encoder.eval()
infer_mean, infer_best = timed(infer)
with open("/proc/self/maps") as f:
    maps = f.read()
print(json.dumps({"train": train_mean, "trainBest": train_best, "inference": infer_mean, "inferenceBest": infer_best,
                  "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "blas": "openblas" if "openblas" in maps else "mkl" if "libmkl" in maps else "reference"}))
