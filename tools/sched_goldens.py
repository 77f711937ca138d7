#!/usr/bin/env python3
"""Upstream scheduler goldens for tests/test_sched.c: tests/data/sched_upstream.safetensors.

The conformance suite covers EulerAncestral with "trailing" spacing and epsilon
prediction, and LCM with epsilon prediction. This script runs the real
diffusers v0.31.0 scheduler classes on the configurations the suite does not reach - EulerDiscrete, "linspace" and
"leading" spacing, v_prediction and sample prediction, custom timesteps,
final_sigmas_type "sigma_min", LCM with up to 50 steps, clip_sample, img2img
add_noise - and records what they return. Nothing here recomputes diffusers'
arithmetic: every stored value is an output of a diffusers call.

Torch: the suite's, Debian bookworm's python3-torch 1.13.1 (apt-get install
python3-torch python3-numpy, or `apt-get download python3-torch libtorch1.13
libsleef3` and dpkg -x them into a private root with PYTHONPATH and
LD_LIBRARY_PATH pointing there; then a venv with --system-site-packages and
pip install diffusers==0.31.0 huggingface_hub==0.26.2 safetensors). Other torch
builds are not bit-compatible: torch >= 2 computes torch.linspace without
torch 1.13's fused multiply-adds (the scaled_linear betas then differ in the
last bit), and the 2.x wheel tried here rounds float32 sqrt incorrectly in ~1
of 5 cases. The script checks that its betas equal the suite's.

Step noise: the ancestral and LCM steps draw noise from randn_tensor inside
step(); here it is replaced by a recorded array, so the C test can feed the
same noise. img2img chains follow StableDiffusionImg2ImgPipeline's
retrieve_timesteps / get_timesteps / prepare_latents lines (transcribed below;
the arithmetic stays in diffusers' add_noise and step).

Usage: tools/sched_goldens.py [SUITE_DIR] [OUT]
"""
import json
import sys

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

import diffusers
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler
from diffusers.schedulers import scheduling_euler_ancestral_discrete as ea_mod
from diffusers.schedulers import scheduling_lcm as lcm_mod

assert diffusers.__version__ == "0.31.0", diffusers.__version__
assert torch.__version__.startswith("1.13"), torch.__version__

suite = sys.argv[1] if len(sys.argv) > 1 else "../shared/conformance"
out_path = sys.argv[2] if len(sys.argv) > 2 else "tests/data/sched_upstream.safetensors"
suite_betas = load_file(f"{suite}/schedule.safetensors")["betas"]

CLASSES = {
    "EulerAncestralDiscreteScheduler": EulerAncestralDiscreteScheduler,
    "EulerDiscreteScheduler": EulerDiscreteScheduler,
    "LCMScheduler": LCMScheduler,
}
BASE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}

tensors = {}
meta = {}


def cfg(cls, **kw):
    c = {"_class_name": cls, **BASE, **kw}
    return c


def make(c):
    s = CLASSES[c["_class_name"]].from_config(c)
    assert c["beta_schedule"] != "scaled_linear" or np.array_equal(s.betas.numpy(), suite_betas), "betas differ"
    return s


def put(name, value):
    tensors[name] = np.ascontiguousarray(np.asarray(value, dtype=np.float32).reshape(-1))


# ---- set_timesteps tables ---------------------------------------------------
sets = []


def add_set(name, c, n=None, custom=None):
    s = make(c)
    if custom is not None:
        s.set_timesteps(timesteps=custom)
    else:
        s.set_timesteps(n)
    put(f"set.{name}.timesteps", s.timesteps.numpy().astype(np.float32))
    if c["_class_name"] != "LCMScheduler":
        put(f"set.{name}.sigmas", s.sigmas.numpy())
    init = s.init_noise_sigma
    put(f"set.{name}.init_noise_sigma", [float(init)])
    meta[f"set.{name}.config"] = json.dumps(c)
    meta[f"set.{name}.n"] = str(n if n is not None else 0)
    meta[f"set.{name}.custom"] = json.dumps(custom)
    sets.append(name)


STEPS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 25, 30, 50, 61, 100, 103, 250, 1000]
for short, cls in (("euler_a", "EulerAncestralDiscreteScheduler"), ("euler", "EulerDiscreteScheduler")):
    for spacing in ("linspace", "leading", "trailing"):
        for n in STEPS:
            add_set(f"{short}.{spacing}.n{n}", cfg(cls, timestep_spacing=spacing, steps_offset=1), n=n)
add_set("euler.leading_offset0.n4", cfg("EulerDiscreteScheduler", timestep_spacing="leading", steps_offset=0), n=4)
add_set("euler.sigma_min.n4", cfg("EulerDiscreteScheduler", timestep_spacing="trailing", final_sigmas_type="sigma_min"),
        n=4)
add_set("euler.custom_trailing", cfg("EulerDiscreteScheduler", timestep_spacing="trailing"), custom=[999, 600, 250, 40])
add_set("euler.custom_leading", cfg("EulerDiscreteScheduler", timestep_spacing="leading", steps_offset=1),
        custom=[901, 400, 3])
add_set("euler.custom_one", cfg("EulerDiscreteScheduler", timestep_spacing="trailing"), custom=[399])
LCM = dict(original_inference_steps=50, timestep_scaling=10.0, prediction_type="epsilon")
for n in range(1, 51):
    add_set(f"lcm.n{n}", cfg("LCMScheduler", **LCM), n=n)
for n in (1, 3, 7, 33, 100):
    add_set(f"lcm.orig100.n{n}", cfg("LCMScheduler", **{**LCM, "original_inference_steps": 100}), n=n)
add_set("lcm.custom_dmd2", cfg("LCMScheduler", **LCM), custom=[999, 749, 499, 249])
add_set("lcm.custom_t399", cfg("LCMScheduler", **LCM), custom=[399])

# ---- step chains --------------------------------------------------------------
chains = []
SHAPE = (1, 4, 8, 8)


class NoiseFeed:
    def __init__(self):
        self.queue = []
        self.drawn = []

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        x = self.queue.pop(0)
        self.drawn.append(x)
        return torch.from_numpy(x.copy()).to(dtype)


def add_chain(name, c, n=None, custom=None, strength=None, seed=0, shape=SHAPE):
    rng = np.random.RandomState(seed)
    feed = NoiseFeed()
    ea_mod.randn_tensor = feed
    lcm_mod.randn_tensor = feed
    s = make(c)
    if custom is not None:
        s.set_timesteps(timesteps=custom)
    else:
        s.set_timesteps(n)
    total = len(s.timesteps)
    t_start = 0
    clean = rng.randn(*shape).astype(np.float32) * 2
    start_noise = rng.randn(*shape).astype(np.float32)
    put(f"chain.{name}.noise0", start_noise)
    if strength is not None:
        # StableDiffusionImg2ImgPipeline: retrieve_timesteps returns the requested
        # step count (the length of the list only for custom timesteps), then
        # get_timesteps + prepare_latents.
        steps = total if custom is not None else n
        init_timestep = min(int(steps * strength), steps)
        t_start = max(steps - init_timestep, 0)
        s.set_begin_index(t_start * s.order)
        put(f"chain.{name}.clean", clean)
        x = s.add_noise(torch.from_numpy(clean), torch.from_numpy(start_noise), s.timesteps[t_start:t_start + 1])
    else:
        # StableDiffusionPipeline.prepare_latents
        x = torch.from_numpy(start_noise) * s.init_noise_sigma
    put(f"chain.{name}.latents0", x.numpy())
    for k, t in enumerate(s.timesteps[t_start:], start=1):
        eps = (rng.randn(*shape) * (1 + 0.5 * k)).astype(np.float32)
        feed.queue = [rng.randn(*shape).astype(np.float32)]
        feed.drawn = []
        inp = s.scale_model_input(x, t)
        out = s.step(torch.from_numpy(eps), t, x)
        put(f"chain.{name}.step{k}.timestep", [float(t)])
        put(f"chain.{name}.step{k}.eps", eps)
        put(f"chain.{name}.step{k}.model_input", inp.numpy())
        if feed.drawn:
            put(f"chain.{name}.step{k}.noise", feed.drawn[0])
        if hasattr(out, "pred_original_sample"):
            put(f"chain.{name}.step{k}.pred_original_sample", out.pred_original_sample.numpy())
        if hasattr(out, "denoised"):
            put(f"chain.{name}.step{k}.denoised", out.denoised.numpy())
        put(f"chain.{name}.step{k}.latents", out.prev_sample.numpy())
        x = out.prev_sample
    meta[f"chain.{name}.config"] = json.dumps(c)
    meta[f"chain.{name}.n"] = str(n if n is not None else 0)
    meta[f"chain.{name}.custom"] = json.dumps(custom)
    meta[f"chain.{name}.strength"] = json.dumps(strength)
    meta[f"chain.{name}.t_start"] = str(t_start)
    meta[f"chain.{name}.steps_run"] = str(total - t_start)
    chains.append(name)


E, EA = "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler"
add_chain("euler_eps_trailing4", cfg(E, timestep_spacing="trailing", steps_offset=1), n=4, seed=1)
add_chain("euler_v_trailing4", cfg(E, timestep_spacing="trailing", prediction_type="v_prediction"), n=4, seed=2)
add_chain("euler_sample_leading3", cfg(E, timestep_spacing="leading", steps_offset=1, prediction_type="sample"), n=3,
          seed=3)
add_chain("euler_eps_linspace3", cfg(E, timestep_spacing="linspace"), n=3, seed=4)
add_chain("euler_sigma_min_trailing2", cfg(E, timestep_spacing="trailing", final_sigmas_type="sigma_min"), n=2, seed=5)
add_chain("euler_custom", cfg(E, timestep_spacing="trailing"), custom=[999, 600, 250, 40], seed=6)
add_chain("euler_a_v_trailing4", cfg(EA, timestep_spacing="trailing", prediction_type="v_prediction"), n=4, seed=7)
add_chain("euler_a_eps_leading3", cfg(EA, timestep_spacing="leading", steps_offset=1), n=3, seed=8)
add_chain("euler_a_eps_linspace2", cfg(EA, timestep_spacing="linspace"), n=2, seed=9)
add_chain("lcm_eps_8", cfg("LCMScheduler", **LCM), n=8, seed=10)
add_chain("lcm_v_4", cfg("LCMScheduler", **{**LCM, "prediction_type": "v_prediction"}), n=4, seed=11)
add_chain("lcm_sample_3", cfg("LCMScheduler", **{**LCM, "prediction_type": "sample"}), n=3, seed=12)
add_chain("lcm_clip_6", cfg("LCMScheduler", **{**LCM, "clip_sample": True, "clip_sample_range": 1.5}), n=6, seed=13)
add_chain("lcm_custom_low", cfg("LCMScheduler", **LCM), custom=[999, 499, 199, 99, 19], seed=14)
add_chain("euler_a_img2img", cfg(EA, timestep_spacing="trailing", steps_offset=1), n=4, strength=0.75, seed=15)
add_chain("euler_img2img", cfg(E, timestep_spacing="trailing", steps_offset=1), n=3, strength=0.7, seed=16)
add_chain("lcm_img2img", cfg("LCMScheduler", **LCM), n=4, strength=0.5, seed=17)
# 61 trailing steps give 62 timesteps (numpy's arange length; the last is -1);
# img2img still reckons strength against the 61 requested.
add_chain("euler_a_trailing61_img2img", cfg(EA, timestep_spacing="trailing", steps_offset=1), n=61, strength=0.5,
          seed=18, shape=(1, 4, 2, 2))
add_chain("euler_custom_img2img", cfg(E, timestep_spacing="trailing"), custom=[999, 800, 600, 400, 200], strength=0.5,
          seed=19)

# ---- beta tables of other configs ----------------------------------------------
tables = []
for name, c in (
    ("linear_default", {"_class_name": E, "beta_schedule": "linear"}),
    ("linear_ldm", {"_class_name": E, "beta_schedule": "linear", "beta_start": 0.00085, "beta_end": 0.012}),
    ("scaled_linear_n777", {"_class_name": E, "beta_schedule": "scaled_linear", "beta_start": 0.0001,
                            "beta_end": 0.02, "num_train_timesteps": 777}),
    ("scaled_linear_n24", {"_class_name": LCMScheduler.__name__, "num_train_timesteps": 24,
                           "original_inference_steps": 6}),
    ("squaredcos_cap_v2", {"_class_name": E, "beta_schedule": "squaredcos_cap_v2"}),
):
    s = CLASSES[c["_class_name"]].from_config(c)
    put(f"table.{name}.betas", s.betas.numpy())
    put(f"table.{name}.alphas_cumprod", s.alphas_cumprod.numpy())
    meta[f"table.{name}.config"] = json.dumps(c)
    tables.append(name)
meta["tables"] = ",".join(tables)

meta["sets"] = ",".join(sets)
meta["chains"] = ",".join(chains)
meta["generator"] = "tools/sched_goldens.py"
meta["diffusers"] = diffusers.__version__
meta["torch"] = torch.__version__
meta["numpy"] = np.__version__
save_file(tensors, out_path, metadata=meta)
print(f"{out_path}: {len(tensors)} tensors, {len(sets)} schedules, {len(chains)} step chains")
