"""PyTorch peer for `npm run bench`: the whole TRIPLEX model (BC1 preset: d 512, 250 genes; neighbor
depth 4 heads 4; global depth 5 heads 8 with APEG k 3; fusion depth 1 heads 4; mlp ratio 4; dropout
0.3/0.3/0.4), the same work as ours, in float32. The model is scripts/fixtures/torch_triplex_reference.py.

Usage: /usr/bin/python3 bench/torch_triplex.py <mode> <iters> <threads>
  frozen     training steps (train mode, Adam lr 1e-4, fusion loss) on batches of 128 spots drawn from
             two slides of 300 spots (20x15 grids); every step runs the global encoder over both
             slides' 600 spots; target tokens given (frozen target encoder).
  inference  eval mode, no grad: one 600-spot slide (24x25 grid): the global encoder over the slide
             once, then every spot's prediction in batches of 128; spots/s = 600 / time.
  full       as frozen with batches of 16, and the target tokens from torchvision's ResNet18 trunk
             (conv1..layer4, train mode) fine-tuned on [16, 3, 224, 224] images; Adam over everything.
One warm-up repetition, then `iters` timed ones. Prints one JSON line: spots/s (mean over the timed
repetitions, and best), threads, the BLAS found loaded (Debian's torch uses the reference BLAS
unless libopenblas0-pthread is installed; the comparison is only fair with OpenBLAS), peak RSS.
"""
import json, os, resource, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "fixtures"))
import torch
import torchvision
from torch_triplex_reference import DEFAULT_CONFIG, Triplex, make_config

torch.set_default_dtype(torch.float32)  # the reference module sets float64 at import

mode = sys.argv[1]
iters, threads = int(sys.argv[2]), int(sys.argv[3])
assert mode in ("frozen", "inference", "full"), mode
torch.set_num_threads(threads)
torch.manual_seed(0)

config = make_config(DEFAULT_CONFIG)  # the BC1 preset
d, genes = config["dim"], config["genes"]
model = Triplex(config)


def grid_slide(h, w):
    """Every cell of an h x w grid, spots in a random order: (features [n, d], rows [n], cols [n])."""
    cells = torch.randperm(h * w)
    return torch.randn(h * w, d), (cells // w).float(), (cells % w).float()


def batch_inputs(batch, slides, spots_per_slide):
    mask = (torch.rand(batch, 25) > 0.2).float()
    mask[:, 12] = 1.0
    slide = torch.randint(0, slides, (batch,))
    spot = torch.stack([torch.randperm(spots_per_slide)[0] for _ in range(batch)])
    return {"neighbors": torch.randn(batch, 25, d), "mask": mask, "truth": torch.randn(batch, genes),
            "batch_slide": slide, "batch_spot": spot}


def timed(step, spots):
    step()  # warm-up
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return spots / (sum(times) / len(times)), spots / min(times)


if mode == "inference":
    slide = grid_slide(24, 25)
    n = slide[0].shape[0]
    neighbors, mask = torch.randn(n, 25, d), torch.ones(n, 25)
    target = torch.randn(n, 49, d)
    model.eval()

    def step():
        with torch.no_grad():
            tokens = model.encode_slides([slide])[0]
            for s in range(0, n, 128):
                e = min(n, s + 128)
                model(target[s:e], neighbors[s:e], mask[s:e], tokens[s:e])["fusion"]

    mean, best = timed(step, n)
else:
    batch = 128 if mode == "frozen" else 16
    slides = [grid_slide(20, 15), grid_slide(20, 15)]
    inputs = batch_inputs(batch, 2, 300)
    params = list(model.parameters())
    if mode == "frozen":
        target = torch.randn(batch, 49, d)
        trunk = None
    else:
        trunk = torch.nn.Sequential(*list(torchvision.models.resnet18().children())[:-2])
        trunk.train()
        images = torch.randn(batch, 3, 224, 224)
        params += list(trunk.parameters())
    model.train()
    opt = torch.optim.Adam(params, lr=1e-4)

    def step():
        opt.zero_grad()
        t = target if trunk is None else trunk(images).flatten(2).transpose(1, 2)  # [B, 49, 512]
        G = model.gather_global(model.encode_slides(slides), inputs["batch_slide"], inputs["batch_spot"])
        out = model(t, inputs["neighbors"], inputs["mask"], G)
        model.loss(out, inputs["truth"]).backward()
        opt.step()

    mean, best = timed(step, batch)

# Debian switches the BLAS behind torch with update-alternatives, so look at what is loaded.
with open("/proc/self/maps") as f:
    maps = f.read()
print(json.dumps({"mode": mode, "spotsPerSecond": mean, "best": best, "threads": torch.get_num_threads(),
                  "blas": "openblas" if "openblas" in maps else "mkl" if "libmkl" in maps else "reference",
                  "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "torch": torch.__version__, "iters": iters}))
