"""PyTorch peer for `npm run bench`: torchvision's ResNet18 trunk, the same work as ours.

Prints one JSON line: forward and training-step images/s at the given batch and size, the
thread count, and whether an optimised BLAS is loaded (Debian's torch links the reference BLAS
unless libopenblas0-pthread is installed; the comparison is only fair with OpenBLAS).
"""
import json, sys, time
import torch, torchvision

batch, size, iters, threads = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
net = torchvision.models.resnet18()
trunk = torch.nn.Sequential(*list(net.children())[:-2])
head = torch.nn.Linear(512, 250)
x = torch.randn(batch, 3, size, size)
y = torch.randn(batch, 250)

def timed(step):
    step()
    times = []
    for _ in range(iters):
        t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
    return batch / (sum(times) / len(times)), batch / min(times)

trunk.eval()
with torch.no_grad():
    fwd = timed(lambda: trunk(x).mean((2, 3)))
trunk.train()
opt = torch.optim.Adam(list(trunk.parameters()) + list(head.parameters()), lr=1e-4)
def train():
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(head(trunk(x).mean((2, 3))), y)
    loss.backward(); opt.step()
trn = timed(train)
# Debian switches the BLAS behind torch with update-alternatives, so look at what is loaded.
with open("/proc/self/maps") as f:
    maps = f.read()
import resource
print(json.dumps({"forward": fwd[0], "forwardBest": fwd[1], "train": trn[0], "trainBest": trn[1],
                  "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "blas": "openblas" if "openblas" in maps else "mkl" if "libmkl" in maps else "reference",
                  "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
