"""Kernels per env step and per PPO gradient step on a CUDA device, in the windows tests/test_tensor_backend.py counts
on the fake device, counted twice: aten ops that are not views (what the tests count) and the CUDA kernels
torch.profiler sees (kernels, memcpy, memset); then syncs per update by torch.cuda.set_sync_debug_mode("warn").
Run from the repository root on a GPU machine: `python tools/gpu_kernel_counts.py` (writes $OUT/kernels.json, or
/tmp/kernels.json); `FAKE=1` runs it on the fake device (aten ops only). docs/benchmark.md has the figures."""
import collections, json, os, sys, warnings
sys.path.insert(0, "tests")
import torch
from torch.profiler import profile, ProfilerActivity
from torch.utils._python_dispatch import TorchDispatchMode
import pgcourse as pg
from pgcourse.rl.algorithms import rollout
from pgcourse.rl.algorithms.agents import OneAgent

FAKE = os.environ.get("FAKE") == "1"
OUT = os.environ.get("OUT", "/tmp")
result = {"torch": torch.__version__, "fake": FAKE}
if not FAKE:
    result["device_name"] = torch.cuda.get_device_name(0)


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__(); self.count = 0
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func is not torch.ops.aten.detach.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def gpu_events(prof):
    names = collections.Counter()
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            names[e.name] += 1
    return names


class Window:
    """aten ops and (real CUDA only) profiler kernels inside a with-block."""
    def __enter__(self):
        self.ops = Ops(); self.ops.__enter__()
        self.prof = None
        if not FAKE:
            torch.cuda.synchronize()
            self.prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]); self.prof.__enter__()
        return self
    def __exit__(self, *exc):
        self.ops.__exit__(*exc)
        if self.prof is not None:
            torch.cuda.synchronize(); self.prof.__exit__(*exc)
            self.kernels = gpu_events(self.prof)
        else:
            self.kernels = collections.Counter()
        return False


def count_env_step(agents):
    counted = []
    collect = rollout._collect_rollout
    def counting(agents_, n_steps, running):
        if agents_.trainers[0].num_updates != 1:
            return collect(agents_, n_steps, running)
        with Window() as w:
            out = collect(agents_, n_steps, running)
        counted.append({"aten_ops_per_step": w.ops.count / n_steps,
                        "cuda_kernels_per_step": sum(w.kernels.values()) / n_steps,
                        "kernel_names": dict(w.kernels.most_common(40))})
        return out
    rollout._collect_rollout = counting
    try:
        settings = dict(env_backend="torch", device="cuda", num_envs=16, n_steps=32, total_steps=16 * 32 * 3,
                        minibatch_size=128, progress=False)
        if agents == 1:
            pg.train("ppo", "CartPole-v1", seed=0, **settings)
        else:
            pg.train_many("ppo", "CartPole-v1", seeds=list(range(agents)), **settings)
    finally:
        rollout._collect_rollout = collect
    return counted


def count_gradient_step(ent_coef=0.0):
    minibatches, counted = OneAgent.minibatches, []
    def counting(self, rows):
        chunks = minibatches(self, rows)
        if self.trainer.num_updates != 1:
            return chunks
        def each():
            for chunk in chunks:
                with Window() as w:
                    yield chunk
                counted.append({"aten_ops": w.ops.count, "cuda_kernels": sum(w.kernels.values()),
                                "kernel_names": dict(w.kernels.most_common(60))})
        return each()
    OneAgent.minibatches = counting
    try:
        pg.train("ppo", "CartPole-v1", seed=0, env_backend="torch", device="cuda", num_envs=16, n_steps=32,
                 total_steps=16 * 32 * 3, minibatch_size=128, update_epochs=1, progress=False, ent_coef=ent_coef)
    finally:
        OneAgent.minibatches = minibatches
    return counted


def syncs_per_update(num_envs, num_minibatches):
    """Real CUDA: synchronizing calls warned by torch.cuda.set_sync_debug_mode between updates."""
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            from pgcourse.rl.config import make_config
            from pgcourse.rl.algorithms import train_ppo
            config = make_config("ppo", "CartPole-v1", "discrete", seed=0, device="cuda", progress=False,
                                 env_backend="torch", num_envs=num_envs, n_steps=16, total_steps=num_envs * 16 * 4,
                                 num_minibatches=num_minibatches, update_epochs=4)
            def hook(trainer):
                seen.append(sum("synchroniz" in str(w.message) for w in caught))
            train_ppo(config, on_update=hook)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [b - a for a, b in zip(seen, seen[1:])]


def step(name, fn):
    try:
        result[name] = fn()
    except Exception as error:  # one section failing leaves the others
        import traceback
        result[name] = {"error": traceback.format_exc()[-3000:]}
    print(name, json.dumps(result[name])[:1500], flush=True)
    with open(os.path.join(OUT, "kernels.json"), "w") as f:
        json.dump(result, f, indent=1)


if FAKE:
    from fake_cuda import fake_cuda
    ctx = fake_cuda(); ctx.__enter__()
step("env_step_1_agent", lambda: count_env_step(1))
step("env_step_4_agents", lambda: count_env_step(4))
step("gradient_step", lambda: count_gradient_step())
step("gradient_step_ent_coef_0.01", lambda: count_gradient_step(0.01))
if not FAKE:
    step("syncs_per_update", lambda: {f"{w}x{k}": syncs_per_update(w, k) for w, k in [(64, 4), (512, 4), (64, 8), (65536, 4)]})
