"""Every device-to-host copy of one run of the course's PPO (bench scaling's workload) at the widths given: its size
(bytes), the code asking for it and its time, the device synchronised before it so the time is
the copy's own. `python tools/gpu_host_copies.py 65536 262144` on a GPU machine (docs/benchmark.md)."""
import collections, sys, time, traceback
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from pgcourse.bench import scaling
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default, torch.ops.aten._local_scalar_dense.default}


class Copies(TorchDispatchMode):
    def __init__(self):
        super().__init__(); self.seen = collections.defaultdict(lambda: [0, 0, 0.0])
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in COPIES:
            src = args[1] if func is torch.ops.aten.copy_.default else args[0]
            dst_dev = args[0].device if func is torch.ops.aten.copy_.default else kwargs.get("device", src.device)
            to_host = src.device.type != "cpu" and (func is torch.ops.aten._local_scalar_dense.default or torch.device(dst_dev).type == "cpu")
            if to_host or dev.type == "cpu":
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                out = func(*args, **kwargs)
                elapsed = time.perf_counter() - start
                st = [f"{f.filename.split('pgcourse/')[-1]}:{f.lineno} {f.name}" for f in traceback.extract_stack(limit=30)
                      if "/pgcourse/" in f.filename and "bench/" not in f.filename][-3:]
                row = self.seen[(str(func).split(".")[2], " <- ".join(reversed(st)))]
                row[0] += 1; row[1] += src.numel() * src.element_size(); row[2] += elapsed
                return out
        return func(*args, **kwargs)


for width in [int(w) for w in sys.argv[1:]] or [65536]:
    scaling.course_ppo(dev, width, 1)
    mode = Copies()
    with mode:
        scaling.course_ppo(dev, width, 1)
    rows = sorted(mode.seen.items(), key=lambda kv: -kv[1][2])
    print(f"== {width:,} envs: {sum(r[0] for _, r in rows)} copies to the host, "
          f"{sum(r[2] for _, r in rows) * 1000:.1f} ms, {sum(r[1] for _, r in rows):,} bytes")
    for (_, where), (n, numel, secs) in rows[:12]:
        print(f"{secs * 1000:8.2f} ms {n:4d}x {numel:>13,} bytes  {where}")
